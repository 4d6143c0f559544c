// SOCKS5 UDP ASSOCIATE relays (RFC 1928 §7) on the UDP engine's thread
// (udp.c). An association is one relay socket for one client; each
// destination the client names in a datagram's header is routed once by JS
// (a DEST event, answered with socks_udp_route), then its datagrams move here:
// the header is stripped on the way out and the real source's header added
// on the way back.
#ifndef UGATE_SOCKS_UDP_H
#define UGATE_SOCKS_UDP_H

#include "udp.h"

enum { SU_EV_DEST = 1, SU_EV_END = 2 };

// What an association reports to the loop thread.
typedef struct {
  int kind;
  uint64_t assoc;
  uint32_t dest;   // DEST: answer with socks_udp_route(assoc, dest, ...)
  char host[256];  // DEST: IPv4/IPv6 text, or the domain as the client sent it
  uint16_t port;
  const char *reason;  // END: "idle", "closed", "shutdown"
  uint64_t pk_up, by_up, pk_down, by_down;
  double ms;
} socks_udp_event;

typedef struct {
  socks_udp_event *(*alloc)(void);    // on the UDP thread: a zeroed event, or NULL
  void (*emit)(socks_udp_event *ev);  // on the UDP thread: hand it to the loop thread
} socks_udp_hooks;

// How one destination's datagrams leave. DIRECT: to `target` from the
// association's own outbound socket (one per family: full cone, replies from
// any remote come back with that remote in the header). FORWARD: to
// `target` from a socket connected to it; replies carry the destination the
// client named. UPSTREAM: header and all to a SOCKS5 server's UDP relay at
// `target`; its replies' headers are passed to the client as they are.
enum socks_udp_mode { SU_DIRECT = 1, SU_FORWARD = 2, SU_REJECT = 3, SU_UPSTREAM = 4 };

typedef struct {
  uint64_t assocs_total;
  int assocs_live;
  uint64_t pk_up, by_up, pk_down, by_down;
  uint64_t dests_evicted;    // destinations over an association's cap (64), least recently used
  uint64_t drop_foreign;     // not from the client's address (IP, and port once known)
  uint64_t drop_fragment;    // FRAG ≠ 0: ugate does not reassemble
  uint64_t drop_malformed;   // a header that is short, lies about lengths, or has garbage
  uint64_t drop_rejected;    // to a destination the rules reject
  uint64_t drop_queue_full;  // while a destination waits for its route, over the bound
  uint64_t drop_send_failed;
  uint64_t gso_refused;  // segmented sends the kernel refused (sent again one datagram at a time)
} socks_udp_counters;

// After udp_engine_start (hooks of the loop thread's side): joins the UDP
// engine as an owner once per engine. 0, or -ENOENT when it is not running.
int socks_udp_init(const socks_udp_hooks *h);
// A relay socket bound at `bind` (port 0: the kernel's choice) for `client`
// (its port 0: the first datagram's port becomes the client's). 0 or -errno.
int socks_udp_open(const struct sockaddr_storage *bind, socklen_t len, const udp_key *client,
                   int idle_ms, uint32_t mark, uint64_t *id, struct sockaddr_storage *bound);
// Route a destination waiting for it; its queued datagrams go out.
// -ENOENT when the association or destination is gone.
int socks_udp_route(uint64_t assoc, uint32_t dest, int mode, const struct sockaddr_storage *target,
                    socklen_t len);
// End an association (reason "closed", reported). -ENOENT when gone already.
int socks_udp_close(uint64_t assoc);
void socks_udp_counters_get(socks_udp_counters *out);

// A client datagram's header "00 00 FRAG ATYP DST.ADDR DST.PORT" (RFC 1928
// §7) at the start of p[0..n): its length (up to 262), or 0 when malformed:
// shorter than 4 bytes, RSV not zero, ATYP not 1 (IPv4), 3 (domain) or
// 4 (IPv6), a domain of length 0 or with a byte outside printable ASCII
// (0x21-0x7e), a header longer than n, or port 0; -1 for a fragment (RSV
// zero, FRAG not: ugate does not reassemble). Reads nothing past p[n - 1].
int socks_udp_parse_header(const uint8_t *p, size_t n);
// The destination a parsed header names: IPv4/IPv6 text or the domain as
// sent, NUL-terminated, and the port.
void socks_udp_header_dest(const uint8_t *hdr, size_t hlen, char host[256], uint16_t *port);
// The SOCKS5 UDP header "00 00 00 ATYP ADDR PORT" for an IP endpoint into
// out (22 bytes at most); its length.
size_t socks_udp_put_header(uint8_t *out, const udp_key *k);
// A reply's header from a SOCKS5 relay: its length (the source in *from), or
// 0 when malformed, a fragment, or naming a domain (no address to reply from).
size_t socks_udp_take_header(const uint8_t *p, size_t n, udp_key *from);

#endif
