// The UDP flow engine: transparent (TPROXY) UDP listeners, one flow per
// client source address and port, datagrams moved in batches on its own
// thread. Knows nothing of JS (mod_udp.c is the JS side): a new flow and a
// finished flow are reported through plain C hooks, and the route of a flow
// is set with udp_route() from the loop thread.
#ifndef UGATE_UDP_H
#define UGATE_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

// An endpoint: family 4 or 6, port in host order, IPv4 in addr[0..3].
typedef struct {
  uint8_t family;
  uint16_t port;
  uint8_t addr[16];
} udp_key;

enum udp_event_kind { UDP_EV_NEW = 1, UDP_EV_END = 2, UDP_EV_MORE = 3, UDP_EV_BUSY = 4 };

// What the engine reports to the loop thread. For UDP_EV_NEW `data` holds a
// copy of the flow's first datagram (malloc'd, owned by the event); for
// UDP_EV_MORE a copy of a later one while the flow still waits for its route
// (at most sniff_datagrams - 1 of them: a QUIC ClientHello may span several
// datagrams); for UDP_EV_END the counters and reason are final; UDP_EV_BUSY
// (flow 0, no endpoints) counts the listener's new flows dropped since the
// last one because too many flows waited for their route.
typedef struct udp_event {
  int kind;
  int listener;  // the id udp_listen returned
  uint64_t flow;
  udp_key src, dst;  // client; the first original destination
  uint8_t *data;
  size_t len;
  const char *reason;  // END: "idle", "evicted", "shutdown", "closed"
  const char *action;  // END: "direct", "forward", "reject", "pending"
  uint64_t pk_up, by_up, pk_down, by_down;
  double ms;
  uint64_t dropped;  // BUSY
} udp_event;

typedef struct {
  // Called on the UDP thread (engine lock held): a zeroed event to fill, or NULL.
  udp_event *(*alloc)(void);
  // Called on the UDP thread: hand a filled event over (to the loop thread).
  void (*emit)(udp_event *ev);
} udp_hooks;

typedef struct {
  int idle_ms;          // a flow without traffic this long ends ("idle")
  int dns_idle_ms;      // the same for flows whose first destination port is 53
  int max_flows;        // over this, the least recently active flow ends ("evicted")
  uint32_t mark;        // SO_MARK of outbound and reply sockets; 0 = none
  int sniff_datagrams;  // datagrams of a new flow copied to JS while it waits (1 = the first only)
} udp_listener_opts;

// How a routed flow's datagrams leave. UDP_SOCKS: to a SOCKS5 server's UDP
// relay (its UDP ASSOCIATE), each datagram with the header naming its
// destination; the replies' headers name their sources (stripped here).
enum udp_mode { UDP_DIRECT = 1, UDP_FORWARD = 2, UDP_REJECT = 3, UDP_SOCKS = 4 };

typedef struct {
  int mode;
  struct sockaddr_storage target;  // UDP_FORWARD: where every datagram goes; UDP_SOCKS: the relay
  socklen_t target_len;
} udp_route_spec;

// Counters since start; drops by reason.
typedef struct {
  uint64_t flows_total, flows_evicted, flows_expired;
  int flows_live, flows_pending, reply_sockets;
  int flows_pending_peak;  // the most flows that waited for JS at once (PENDING_MAX caps it)
  uint64_t pk_up, by_up, pk_down, by_down;
  uint64_t drop_queue_full;    // datagrams of a flow still waiting for its route, over the bound
  uint64_t drop_rejected;      // datagrams of a rejected flow
  uint64_t drop_busy;          // new flows while too many wait for JS
  uint64_t drop_no_origdst;    // no original destination (not TPROXYed)
  uint64_t drop_truncated;     // larger than the receive buffer
  uint64_t drop_send_failed;   // sendmmsg refused it (buffer full, unreachable, ...)
  uint64_t drop_reply_socket;  // no transparent socket for the reply's source
  uint64_t drop_no_memory;
} udp_counters;

// One live flow, for the flow list.
typedef struct {
  uint64_t id;
  int listener;
  udp_key src, dst;
  const char *action;
  uint64_t pk_up, by_up, pk_down, by_down;
  double age_ms, idle_ms;
} udp_flow_info;

// Start the UDP engine's thread (on the first listener). Returns 0 or -errno.
int udp_engine_start(const udp_hooks *hooks);
// Stop the thread; every flow is freed without being reported.
void udp_engine_stop(void);
// At most how many flows wait for their route at once, their queued datagrams
// holding at most how many bytes together (4096, 4 MiB; tests: fewer, to
// reach the busy drop and its log line).
void udp_pending_caps(unsigned flows, size_t bytes);

// A transparent UDP socket at addr (IP_TRANSPARENT, original destination
// ancillary data, IPv4 and IPv6 on "::"). Returns an id > 0, or -errno.
// *bound gets the bound address (a port 0 made concrete).
int udp_listen(const struct sockaddr_storage *addr, socklen_t len, const udp_listener_opts *opts,
               struct sockaddr_storage *bound);
// New options for the listener's next flows (reload); -ENOENT when unknown.
int udp_listener_set(int id, const udp_listener_opts *opts);
// Close the listener and end its flows (reason "closed").
void udp_listener_close(int id);
// Set the route of a flow waiting for one; its queued datagrams go out.
// -ENOENT when the flow is gone (expired or evicted meanwhile); -errno when
// its outbound socket cannot be made (the flow is then rejected).
int udp_route(uint64_t flow, const udp_route_spec *r);
// End one flow (reason "closed"); -ENOENT when it is gone.
int udp_flow_close(uint64_t flow);
// End every flow (reason "shutdown").
void udp_close_all(void);
void udp_counters_get(udp_counters *out);
// A malloc'd array of the live flows (*n of them); NULL when none or out of memory.
udp_flow_info *udp_flows_list(int *n);

// The engine the UDP thread is (NULL while stopped): socks_udp.c is another owner there.
struct engine *udp_engine(void);

// sockaddr ↔ key; a v4-mapped IPv6 address becomes family 4.
void udp_key_from_sockaddr(udp_key *k, const struct sockaddr_storage *ss);
socklen_t udp_key_to_sockaddr(const udp_key *k, struct sockaddr_storage *ss);

#endif
