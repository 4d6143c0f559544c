// The UDP flow engine, on its own engine thread (engine.c). A TPROXY listener
// receives every captured datagram (recvmmsg, with its original destination
// as ancillary data); a client source address and port is one flow. The
// first datagram of a new flow is copied to the loop thread (JS routes it),
// and so are its next ones up to the listener's sniff_datagrams while JS has
// not decided (a sniffer may need them: a QUIC ClientHello spans two
// datagrams with post-quantum key shares); the flow's datagrams are queued
// (bounded) until udp_route() says where they go. Then, in batches:
//
//   client ─► listener ─► flow's outbound socket (SO_MARK) ─► remote
//   client ◄─ reply socket bound to the remote (IP_TRANSPARENT) ◄─ outbound socket
//
// A batch goes out in one sendmmsg system call, a run of same-size datagrams
// to one destination as one UDP_SEGMENT message (udp_send.h).
//
// NAT behaviour is "full cone" (endpoint-independent mapping and filtering):
// one outbound socket per flow whatever the destination, and a datagram from
// ANY remote to it goes back to the client, from that remote's address (a
// reply socket per remote, made on demand and cached).
//
// Threading: everything here is guarded by udp.lock, which the UDP thread
// holds while it handles one event (and its tick and round) and the loop
// thread takes for its calls (routes, counters, the flow list). Datagrams
// never wait behind JS: the loop thread may be busy (a route decision, `nft -f`
// run synchronously) while this thread keeps moving.
//
// A flow routed to a SOCKS5 upstream (UDP_SOCKS) has its outbound socket
// connected to the upstream's UDP relay: each datagram goes out behind the
// header naming its destination (socks_slot), and drain_out() takes each
// reply's source from the relay's header and strips it before the reply is
// sent from that source. The upstream's control connection is JS's.
//
// socks_udp.c (SOCKS5 UDP ASSOCIATE relays) is another owner on this
// engine (udp_engine()), with its own lock.
#define _GNU_SOURCE
#include "udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cmsg.h"
#include "engine.h"
#include "socks_udp.h"
#include "udp_send.h"

// musl toolchains ship without the kernel headers that define these.
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR 20
#endif
#ifndef IP_ORIGDSTADDR
#define IP_ORIGDSTADDR IP_RECVORIGDSTADDR
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IPV6_RECVORIGDSTADDR
#define IPV6_RECVORIGDSTADDR 74
#endif
#ifndef IPV6_ORIGDSTADDR
#define IPV6_ORIGDSTADDR IPV6_RECVORIGDSTADDR
#endif

#define BATCH UDP_TX_BATCH  // datagrams per recvmmsg/sendmmsg
#define DGRAM_MAX 65536     // a whole UDP payload fits: nothing is truncated
#define BATCHES_PER_WAKE 2  // then other sockets get their turn (level-triggered)
#define SWEEP_MS 1000       // idle flows and reply sockets are checked this often (the tick)
#define QUEUE_MAX 32        // datagrams kept per flow while JS decides
#define QUEUE_BYTES (64 * 1024)
// Flows waiting for JS at once, and the bytes their queues hold together:
// a burst of a few thousand new flows (the loop thread stalls for a GC or an
// `nft -f` while 10 000 flows/s open) waits instead of being dropped, within
// bounded memory. Over either cap a new flow's first datagram is dropped
// (counted as busy, logged once per tick per listener). Tests lower them
// (udp_pending_caps).
#define PENDING_MAX 4096
#define PENDING_BYTES (4 * 1024 * 1024)
static unsigned pending_max = PENDING_MAX;
static size_t pending_bytes_max = PENDING_BYTES;
#define REPLY_MAX 4096  // cached reply sockets
#define HASH_SIZE 4096  // buckets of the flow and reply tables (power of two)
#define GSO_UP 1        // udp_flow.gso_off: the kernel refused a segmented send up
#define GSO_DOWN 2      // ... or down (to the client)

enum { ST_PENDING, ST_ACTIVE, ST_REJECT, ST_DEAD };

typedef struct udp_flow udp_flow;
typedef struct listener listener;

typedef struct queued {
  struct queued *next;
  udp_key dst;
  size_t len;
  uint8_t data[];
} queued;

struct listener {
  listener *next;
  engine_handler h;
  int id, fd, family;
  bool closed;  // on the dead list: an event fetched before the close must skip it
  udp_listener_opts opts;
  udp_flow *lru_head, *lru_tail;  // least recently active first
  int flows;
  uint64_t busy;  // new flows dropped as busy since the last tick reported them
};

struct udp_flow {
  udp_flow *hnext;          // hash chain (by listener + client)
  udp_flow *inext;          // hash chain by id (routes and closes from JS)
  udp_flow *prev, *next;    // the listener's LRU list
  udp_flow *pprev, *pnext;  // pending list (waiting for JS)
  listener *l;
  engine_handler h;
  uint64_t id;
  udp_key src, first_dst, last_dst;
  int state, mode, out_fd, idle_ms;
  uint8_t gso_off;  // GSO_UP | GSO_DOWN: send that way one datagram at a time
  struct sockaddr_storage target;
  socklen_t target_len;
  queued *qhead, *qtail;
  int qn, copies_left;  // copies_left: later datagrams still to copy to JS (pending only)
  size_t qbytes;
  double start_ms, last_ms;
  uint64_t pk_up, by_up, pk_down, by_down;
};

typedef struct reply_sock reply_sock;
struct reply_sock {
  reply_sock *hnext, *prev, *next;
  udp_key remote;
  int fd;
  double last_ms;
};

static struct {
  engine *e;    // NULL while stopped
  bool kicked;  // `kick` is posted and has not run yet
  pthread_mutex_t lock;
  udp_hooks hooks;
  listener *listeners;
  int next_listener;
  uint64_t next_flow;
  udp_flow *flows[HASH_SIZE];
  udp_flow *by_id[HASH_SIZE];
  udp_flow *pending;
  size_t pending_bytes;      // queued by pending flows (PENDING_BYTES)
  udp_flow *dead;            // freed after the current batch of events
  listener *dead_listeners;  // the same for closed listeners
  reply_sock *replies[HASH_SIZE];
  reply_sock *reply_head, *reply_tail;
  udp_counters c;
} udp = {.lock = PTHREAD_MUTEX_INITIALIZER};

// Receive buffers, used by the UDP thread only (and by udp_route on the loop
// thread under the lock, which never uses them): pages are touched only by
// the datagrams that arrive.
static uint8_t bufs[BATCH][DGRAM_MAX];
static struct sockaddr_storage names[BATCH];
static char ctrl[BATCH][CMSG_SPACE(sizeof(struct sockaddr_in6))];
static struct mmsghdr msgs[BATCH];
static struct iovec iovs[BATCH];

// ---- keys ---------------------------------------------------------------------------------

void udp_key_from_sockaddr(udp_key *k, const struct sockaddr_storage *ss) {
  memset(k, 0, sizeof *k);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    k->family = 4;
    k->port = ntohs(a->sin_port);
    memcpy(k->addr, &a->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    k->port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      k->family = 4;
      memcpy(k->addr, &a->sin6_addr.s6_addr[12], 4);
    } else {
      k->family = 6;
      memcpy(k->addr, &a->sin6_addr, 16);
    }
  }
}

socklen_t udp_key_to_sockaddr(const udp_key *k, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (k->family == 4) {
    struct sockaddr_in *a = (void *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(k->port);
    memcpy(&a->sin_addr, k->addr, 4);
    return sizeof *a;
  }
  struct sockaddr_in6 *a = (void *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(k->port);
  memcpy(&a->sin6_addr, k->addr, 16);
  return sizeof *a;
}

static bool key_eq(const udp_key *a, const udp_key *b) {
  return a->family == b->family && a->port == b->port &&
         memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

static unsigned key_hash(const udp_key *k, unsigned salt) {
  uint32_t h = 2166136261u ^ salt;  // FNV-1a
  int n = k->family == 4 ? 4 : 16;
  for (int i = 0; i < n; i++) h = (h ^ k->addr[i]) * 16777619u;
  h = (h ^ (k->port & 0xff)) * 16777619u;
  h = (h ^ (k->port >> 8)) * 16777619u;
  return h & (HASH_SIZE - 1);
}

// ---- flows --------------------------------------------------------------------------------

static void lru_unlink(udp_flow *f) {
  listener *l = f->l;
  if (f->prev)
    f->prev->next = f->next;
  else
    l->lru_head = f->next;
  if (f->next)
    f->next->prev = f->prev;
  else
    l->lru_tail = f->prev;
  f->prev = f->next = NULL;
}

static void lru_append(udp_flow *f) {
  listener *l = f->l;
  f->prev = l->lru_tail;
  f->next = NULL;
  if (l->lru_tail)
    l->lru_tail->next = f;
  else
    l->lru_head = f;
  l->lru_tail = f;
}

static void touch(udp_flow *f, double now) {
  f->last_ms = now;
  if (f->l->lru_tail != f) {
    lru_unlink(f);
    lru_append(f);
  }
}

static void pending_unlink(udp_flow *f) {
  if (f->pprev)
    f->pprev->pnext = f->pnext;
  else if (udp.pending == f)
    udp.pending = f->pnext;
  else
    return;  // not pending
  if (f->pnext) f->pnext->pprev = f->pprev;
  f->pprev = f->pnext = NULL;
  udp.c.flows_pending--;
}

// A live flow by id (udp.lock held).
static udp_flow *flow_by_id(uint64_t id) {
  udp_flow *f = udp.by_id[id & (HASH_SIZE - 1)];
  while (f && f->id != id) f = f->inext;
  return f;
}

static udp_flow *flow_find(listener *l, const udp_key *src) {
  for (udp_flow *f = udp.flows[key_hash(src, l->id)]; f; f = f->hnext)
    if (f->l == l && key_eq(&f->src, src)) return f;
  return NULL;
}

static const char *mode_name(const udp_flow *f) {
  if (f->state == ST_PENDING) return "pending";
  if (f->state == ST_REJECT) return "reject";
  return f->mode == UDP_FORWARD ? "forward" : f->mode == UDP_SOCKS ? "upstream" : "direct";
}

static void free_queue(udp_flow *f) {
  for (queued *q = f->qhead, *next; q; q = next) {
    next = q->next;
    free(q);
  }
  f->qhead = f->qtail = NULL;
  udp.pending_bytes -= f->qbytes;
  f->qn = 0;
  f->qbytes = 0;
}

// The fields every event of flow f carries.
static void event_of(udp_event *ev, int kind, const udp_flow *f) {
  ev->kind = kind;
  ev->listener = f->l->id;
  ev->flow = f->id;
  ev->src = f->src;
  ev->dst = f->first_dst;
}

// End a flow: report it, take it out of every list; its memory waits on the
// dead list until no fetched epoll event can still point to it.
static void flow_end(udp_flow *f, const char *reason, bool report) {
  if (f->state == ST_DEAD) return;
  udp_event *ev = report ? udp.hooks.alloc() : NULL;
  if (ev) {
    event_of(ev, UDP_EV_END, f);
    ev->reason = reason;
    ev->action = mode_name(f);
    ev->pk_up = f->pk_up;
    ev->by_up = f->by_up;
    ev->pk_down = f->pk_down;
    ev->by_down = f->by_down;
    ev->ms = engine_now_ms() - f->start_ms;
    udp.hooks.emit(ev);
  }
  udp_flow **pp = &udp.flows[key_hash(&f->src, f->l->id)];
  while (*pp && *pp != f) pp = &(*pp)->hnext;
  if (*pp) *pp = f->hnext;
  pp = &udp.by_id[f->id & (HASH_SIZE - 1)];
  while (*pp && *pp != f) pp = &(*pp)->inext;
  if (*pp) *pp = f->inext;
  lru_unlink(f);
  pending_unlink(f);
  f->l->flows--;
  udp.c.flows_live--;
  if (f->out_fd >= 0) close(f->out_fd);  // also leaves the epoll set
  f->out_fd = -1;
  free_queue(f);
  f->state = ST_DEAD;
  f->hnext = udp.dead;
  udp.dead = f;
}

static void free_dead(void) {
  for (udp_flow *f = udp.dead, *next; f; f = next) {
    next = f->hnext;
    free(f);
  }
  udp.dead = NULL;
  for (listener *l = udp.dead_listeners, *next; l; l = next) {
    next = l->next;
    free(l);
  }
  udp.dead_listeners = NULL;
}

static udp_flow *flow_new(listener *l, const udp_key *src, const udp_key *dst, const uint8_t *data,
                          size_t len, double now) {
  if ((unsigned)udp.c.flows_pending >= pending_max || udp.pending_bytes + len > pending_bytes_max) {
    udp.c.drop_busy++;
    l->busy++;
    return NULL;
  }
  if (l->flows >= l->opts.max_flows && l->lru_head) {
    udp.c.flows_evicted++;
    flow_end(l->lru_head, "evicted", true);
  }
  udp_flow *f = calloc(1, sizeof *f);
  udp_event *ev = f ? udp.hooks.alloc() : NULL;
  uint8_t *copy = ev && len > 0 ? malloc(len) : NULL;
  if (!f || !ev || (len > 0 && !copy)) {
    free(f);
    free(copy);
    if (ev) udp.hooks.emit(ev);  // kind 0: the receiver just frees it
    udp.c.drop_no_memory++;
    return NULL;
  }
  f->l = l;
  f->id = ++udp.next_flow;
  f->src = *src;
  f->first_dst = f->last_dst = *dst;
  f->state = ST_PENDING;
  f->copies_left = l->opts.sniff_datagrams - 1;
  f->out_fd = -1;
  f->idle_ms = dst->port == 53 ? l->opts.dns_idle_ms : l->opts.idle_ms;
  f->start_ms = f->last_ms = now;
  unsigned h = key_hash(src, l->id);
  f->hnext = udp.flows[h];
  udp.flows[h] = f;
  f->inext = udp.by_id[f->id & (HASH_SIZE - 1)];
  udp.by_id[f->id & (HASH_SIZE - 1)] = f;
  lru_append(f);
  f->pnext = udp.pending;
  if (udp.pending) udp.pending->pprev = f;
  udp.pending = f;
  if (++udp.c.flows_pending > udp.c.flows_pending_peak)
    udp.c.flows_pending_peak = udp.c.flows_pending;
  l->flows++;
  udp.c.flows_live++;
  udp.c.flows_total++;
  if (len > 0) memcpy(copy, data, len);
  event_of(ev, UDP_EV_NEW, f);
  ev->data = copy;
  ev->len = len;
  udp.hooks.emit(ev);
  return f;
}

// False: dropped (counted).
static bool enqueue(udp_flow *f, const udp_key *dst, const uint8_t *data, size_t len) {
  if (f->qn >= QUEUE_MAX || f->qbytes + len > QUEUE_BYTES ||
      udp.pending_bytes + len > pending_bytes_max) {
    udp.c.drop_queue_full++;
    return false;
  }
  queued *q = malloc(sizeof *q + len);
  if (!q) {
    udp.c.drop_no_memory++;
    return false;
  }
  q->next = NULL;
  q->dst = *dst;
  q->len = len;
  memcpy(q->data, data, len);
  if (f->qtail)
    f->qtail->next = q;
  else
    f->qhead = q;
  f->qtail = q;
  f->qn++;
  f->qbytes += len;
  udp.pending_bytes += len;
  return true;
}

// A later datagram of a flow waiting for its route, copied to JS for its
// sniffer. Out of memory: JS just does not see it (the datagram stays queued).
static void copy_to_js(udp_flow *f, const uint8_t *data, size_t len) {
  if (f->copies_left <= 0) return;
  f->copies_left--;
  udp_event *ev = udp.hooks.alloc();
  uint8_t *copy = ev && len > 0 ? malloc(len) : NULL;
  if (ev && (len == 0 || copy)) {
    if (len > 0) memcpy(copy, data, len);
    event_of(ev, UDP_EV_MORE, f);
    ev->data = copy;
    ev->len = len;
  }
  if (ev) udp.hooks.emit(ev);  // kind 0 when the copy failed: the receiver just frees it
}

// ---- reply sockets ------------------------------------------------------------------------

static void reply_unlink_lru(reply_sock *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    udp.reply_head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    udp.reply_tail = r->prev;
  r->prev = r->next = NULL;
}

static void reply_append_lru(reply_sock *r) {
  r->prev = udp.reply_tail;
  r->next = NULL;
  if (udp.reply_tail)
    udp.reply_tail->next = r;
  else
    udp.reply_head = r;
  udp.reply_tail = r;
}

static void reply_free(reply_sock *r) {
  reply_sock **pp = &udp.replies[key_hash(&r->remote, 0)];
  while (*pp && *pp != r) pp = &(*pp)->hnext;
  if (*pp) *pp = r->hnext;
  reply_unlink_lru(r);
  close(r->fd);
  free(r);
  udp.c.reply_sockets--;
}

// A socket bound to `remote` (not one of ours: IP_TRANSPARENT), so the
// client sees replies come from where it sent to. NULL with errno set.
static reply_sock *reply_get(const udp_key *remote, uint32_t mark, double now) {
  unsigned h = key_hash(remote, 0);
  for (reply_sock *r = udp.replies[h]; r; r = r->hnext) {
    if (!key_eq(&r->remote, remote)) continue;
    r->last_ms = now;
    reply_unlink_lru(r);
    reply_append_lru(r);
    return r;
  }
  if (udp.c.reply_sockets >= REPLY_MAX) reply_free(udp.reply_head);
  struct sockaddr_storage ss;
  socklen_t len = udp_key_to_sockaddr(remote, &ss);
  int v6 = remote->family == 6;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  int one = 1, zero = 0;
  int ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
           setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
                      sizeof one) == 0 &&
           (!v6 || setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0) &&
           (mark == 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0) &&
           // It only sends: a small receive buffer keeps stray datagrams cheap.
           setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &zero, sizeof zero) == 0 &&
           bind(fd, (struct sockaddr *)&ss, len) == 0;
  reply_sock *r = ok ? calloc(1, sizeof *r) : NULL;
  if (!r) {
    int err = ok ? ENOMEM : errno;
    close(fd);
    errno = err;
    return NULL;
  }
  r->remote = *remote;
  r->fd = fd;
  r->last_ms = now;
  r->hnext = udp.replies[h];
  udp.replies[h] = r;
  reply_append_lru(r);
  udp.c.reply_sockets++;
  return r;
}

// ---- sending ------------------------------------------------------------------------------

static udp_tx tx;  // the UDP thread's send batch (udp_send.h)

// Send the batch built since the last send; what went out is added to the
// flow's counters (pk, by) and the engine's; a refused segmented send sets
// `gso_bit` in the flow's gso_off: that way no longer segments.
static void tx_send(udp_flow *f, int fd, uint8_t gso_bit, uint64_t *pk, uint64_t *by,
                    uint64_t *all_pk, uint64_t *all_by) {
  udp_tx_result r;
  udp_tx_send(&tx, fd, &r);
  if (r.gso_refused) f->gso_off |= gso_bit;
  *pk += r.pk;
  *all_pk += r.pk;
  *by += r.by;
  *all_by += r.by;
  udp.c.drop_send_failed += r.failed;
}

// The datagram's destination through the flow's outbound socket.
static socklen_t out_address(udp_flow *f, const udp_key *dst, struct sockaddr_storage *ss) {
  if (f->mode == UDP_FORWARD) {
    *ss = f->target;
    return f->target_len;
  }
  return udp_key_to_sockaddr(dst, ss);
}

// Add one datagram up to the batch. prev: the destination of the datagram
// added before it for this flow in this batch (NULL: none); hdr and name: its
// buffers for a SOCKS header and a destination address, living until the
// send; *name and *name_len carry the run's address from one call to the next.
static void add_up(udp_flow *f, const udp_key *dst, const udp_key *prev, uint8_t *hdr,
                   struct sockaddr_storage *name_buf, void **name, socklen_t *name_len,
                   uint8_t *data, size_t len) {
  bool gso = !(f->gso_off & GSO_UP);
  // A forwarded flow's datagrams all go to its target.
  bool same = prev && (f->mode == UDP_FORWARD || key_eq(dst, prev));
  if (f->mode == UDP_SOCKS) {
    // Connected to the relay; the header names the destination.
    size_t hl = socks_udp_put_header(hdr, dst);
    udp_tx_add(&tx, gso, same, NULL, 0, hdr, hl, data, len);
    return;
  }
  if (!same) {
    *name = name_buf;
    *name_len = out_address(f, dst, name_buf);
  }
  udp_tx_add(&tx, gso, same, *name, *name_len, NULL, 0, data, len);
}

static void send_up(udp_flow *f) {
  tx_send(f, f->out_fd, GSO_UP, &f->pk_up, &f->by_up, &udp.c.pk_up, &udp.c.by_up);
}

// The datagrams queued while JS decided, once the route is there: one batch
// (on the loop thread: the thread's batch is free whenever udp.lock is).
_Static_assert(QUEUE_MAX <= UDP_TX_BATCH, "a flow's queue fits in one batch");
static void send_queue(udp_flow *f) {
  uint8_t hdrs[QUEUE_MAX][22];
  struct sockaddr_storage names_q[QUEUE_MAX];
  void *name = NULL;
  socklen_t name_len = 0;
  const udp_key *prev = NULL;
  int k = 0;
  for (queued *q = f->qhead; q && k < QUEUE_MAX; prev = &q->dst, q = q->next, k++)
    add_up(f, &q->dst, prev, hdrs[k], &names_q[k], &name, &name_len, q->data, q->len);
  if (k > 0) send_up(f);
}

// ---- the listener: client → remote --------------------------------------------------------

static bool orig_dst(struct msghdr *m, udp_key *dst) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = ug_cmsg_next(m, c)) {
    if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) ||
        (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR)) {
      struct sockaddr_storage ss;
      memset(&ss, 0, sizeof ss);
      size_t n = c->cmsg_len - CMSG_LEN(0);
      memcpy(&ss, CMSG_DATA(c), n < sizeof ss ? n : sizeof ss);
      udp_key_from_sockaddr(dst, &ss);
      return dst->family != 0;
    }
  }
  return false;
}

static void prepare_recv(bool with_ctrl) {
  for (int i = 0; i < BATCH; i++) {
    iovs[i] = (struct iovec){bufs[i], DGRAM_MAX};
    msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i],
                                      .msg_namelen = sizeof names[i],
                                      .msg_iov = &iovs[i],
                                      .msg_iovlen = 1,
                                      .msg_control = with_ctrl ? ctrl[i] : NULL,
                                      .msg_controllen = with_ctrl ? sizeof ctrl[i] : 0};
    msgs[i].msg_len = 0;
  }
}

// Per received datagram: its flow (NULL = dropped) and destination.
static udp_flow *rx_flow[BATCH];
static udp_key rx_dst[BATCH];
static struct sockaddr_storage tx_names[BATCH];
static uint8_t socks_hdrs[BATCH][22];  // a UDP_SOCKS datagram's header, naming its destination

static void drain_listener(listener *l) {
  double now = engine_now_ms();
  for (int b = 0; b < BATCHES_PER_WAKE; b++) {
    prepare_recv(true);
    int n = recvmmsg(l->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;  // EAGAIN, or an error the next event sees again
    // Pass 1: classify. A new flow reports its first datagram to JS.
    for (int i = 0; i < n; i++) {
      struct msghdr *m = &msgs[i].msg_hdr;
      rx_flow[i] = NULL;
      udp_key src;
      udp_key_from_sockaddr(&src, &names[i]);
      if (m->msg_flags & MSG_TRUNC) {
        udp.c.drop_truncated++;
        continue;
      }
      if (!orig_dst(m, &rx_dst[i]) || src.family != rx_dst[i].family) {
        udp.c.drop_no_origdst++;
        continue;
      }
      udp_flow *f = flow_find(l, &src);
      size_t len = msgs[i].msg_len;
      bool fresh = !f;
      if (fresh) {
        f = flow_new(l, &src, &rx_dst[i], bufs[i], len, now);
        if (!f) continue;
      }
      touch(f, now);
      f->last_dst = rx_dst[i];
      if (f->state == ST_PENDING) {
        // Only a queued datagram is copied: the copies stay within PENDING_BYTES too.
        if (enqueue(f, &rx_dst[i], bufs[i], len) && !fresh) copy_to_js(f, bufs[i], len);
      } else if (f->state == ST_REJECT)
        udp.c.drop_rejected++;
      else
        rx_flow[i] = f;
    }
    // Pass 2: runs of one active flow go out in one sendmmsg.
    for (int i = 0; i < n;) {
      udp_flow *f = rx_flow[i];
      int j = i + 1;
      while (j < n && rx_flow[j] == f) j++;
      // An eviction later in the batch may have ended it (its memory is still valid).
      if (f && f->state == ST_ACTIVE) {
        void *name = NULL;
        socklen_t name_len = 0;
        for (int k = i; k < j; k++)
          add_up(f, &rx_dst[k], k > i ? &rx_dst[k - 1] : NULL, socks_hdrs[k], &tx_names[k], &name,
                 &name_len, bufs[k], msgs[k].msg_len);
        send_up(f);
      }
      i = j;
    }
    if (n < BATCH) return;
  }
}

// ---- the outbound socket: remote → client -------------------------------------------------

static void drain_out(udp_flow *f) {
  if (f->state != ST_ACTIVE) return;
  double now = engine_now_ms();
  struct sockaddr_storage client;
  socklen_t client_len = udp_key_to_sockaddr(&f->src, &client);
  for (int b = 0; b < BATCHES_PER_WAKE; b++) {
    prepare_recv(false);
    int n = recvmmsg(f->out_fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    static udp_key from[BATCH];
    static uint32_t lens[BATCH];
    int kept = 0;
    for (int i = 0; i < n; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        udp.c.drop_truncated++;
        continue;
      }
      // A forwarded flow's replies come from where the client sent to; a
      // SOCKS relay's replies name their source in the header it strips.
      size_t skip = 0;
      if (f->mode == UDP_FORWARD) {
        from[kept] = f->last_dst;
      } else if (f->mode == UDP_SOCKS) {
        skip = socks_udp_take_header(bufs[i], msgs[i].msg_len, &from[kept]);
        if (skip == 0) {
          udp.c.drop_truncated++;  // not a relay's reply: malformed
          continue;
        }
      } else {
        udp_key_from_sockaddr(&from[kept], &names[i]);
      }
      if (from[kept].family != f->src.family) {
        udp.c.drop_reply_socket++;
        continue;
      }
      lens[kept] = msgs[i].msg_len - skip;
      if (kept != i || skip) memmove(bufs[kept], bufs[i] + skip, lens[kept]);
      kept++;
    }
    if (kept > 0) touch(f, now);
    // Runs of one remote: one reply socket, one sendmmsg.
    for (int i = 0; i < kept;) {
      int j = i + 1;
      while (j < kept && key_eq(&from[j], &from[i])) j++;
      reply_sock *r = reply_get(&from[i], f->l->opts.mark, now);
      if (!r) {
        udp.c.drop_reply_socket += j - i;
        i = j;
        continue;
      }
      for (int k = i; k < j; k++)
        udp_tx_add(&tx, !(f->gso_off & GSO_DOWN), k > i, &client, client_len, NULL, 0, bufs[k],
                   lens[k]);
      tx_send(f, r->fd, GSO_DOWN, &f->pk_down, &f->by_down, &udp.c.pk_down, &udp.c.by_down);
      i = j;
    }
    if (n < BATCH) return;
  }
}

// ---- the thread ---------------------------------------------------------------------------

static void sweep(double now) {
  for (listener *l = udp.listeners; l; l = l->next) {
    for (udp_flow *f = l->lru_head, *next; f; f = next) {
      next = f->next;
      if (now - f->last_ms >= f->idle_ms) {
        udp.c.flows_expired++;
        flow_end(f, "idle", true);
      }
    }
  }
  // A reply socket lives as long as a flow may still use it: the longest idle timeout.
  double reply_idle = 1000;
  for (listener *l = udp.listeners; l; l = l->next)
    if (l->opts.idle_ms > reply_idle) reply_idle = l->opts.idle_ms;
  while (udp.reply_head && now - udp.reply_head->last_ms >= reply_idle) reply_free(udp.reply_head);
}

void udp_pending_caps(unsigned flows, size_t bytes) {
  pthread_mutex_lock(&udp.lock);
  pending_max = flows;
  pending_bytes_max = bytes;
  pthread_mutex_unlock(&udp.lock);
}

// Overload is logged (by JS), once per tick per listener that dropped new
// flows, not once per datagram.
static void report_busy(void) {
  for (listener *l = udp.listeners; l; l = l->next) {
    if (l->busy == 0) continue;
    udp_event *ev = udp.hooks.alloc();
    if (!ev) return;  // the next tick tries again
    ev->kind = UDP_EV_BUSY;
    ev->listener = l->id;
    ev->dropped = l->busy;
    l->busy = 0;
    udp.hooks.emit(ev);
  }
}

static void on_listener(engine_handler *h, uint32_t events) {
  (void)events;
  listener *l = (listener *)((char *)h - offsetof(listener, h));
  pthread_mutex_lock(&udp.lock);
  if (!l->closed) drain_listener(l);
  pthread_mutex_unlock(&udp.lock);
}

static void on_out(engine_handler *h, uint32_t events) {
  (void)events;
  udp_flow *f = (udp_flow *)((char *)h - offsetof(udp_flow, h));
  pthread_mutex_lock(&udp.lock);
  drain_out(f);
  pthread_mutex_unlock(&udp.lock);
}

static void tick(engine_owner *o, double now) {
  (void)o;
  pthread_mutex_lock(&udp.lock);
  sweep(now);
  report_busy();
  pthread_mutex_unlock(&udp.lock);
}

// After each pass: no fetched event can name a dead flow or listener any more.
static void round_end(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&udp.lock);
  free_dead();
  pthread_mutex_unlock(&udp.lock);
}

static void end_all(const char *reason, bool report, listener *only) {
  for (listener *l = udp.listeners; l; l = l->next) {
    if (only && l != only) continue;
    while (l->lru_head) flow_end(l->lru_head, reason, report);
  }
}

// Free every flow without reporting it (nobody reads results any more).
static void stop(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&udp.lock);
  end_all("shutdown", false, NULL);
  free_dead();
  while (udp.reply_head) reply_free(udp.reply_head);
  for (listener *l = udp.listeners, *next; l; l = next) {
    next = l->next;
    close(l->fd);
    free(l);
  }
  udp.listeners = NULL;
  pthread_mutex_unlock(&udp.lock);
}

// The ticks never stop (busy is NULL): idle flows and reply sockets expire
// whatever else happens.
static engine_owner owner = {.round = round_end, .tick = tick, .stop = stop};

// A wake for the thread, after the loop thread ended flows: it frees them in
// its round.
static void kicked(engine_job *j) {
  (void)j;
  pthread_mutex_lock(&udp.lock);
  udp.kicked = false;
  pthread_mutex_unlock(&udp.lock);
}

static engine_job kick_job = {.run = kicked};

// Under udp.lock.
static void kick(void) {
  if (udp.kicked) return;
  udp.kicked = true;
  engine_post(udp.e, &kick_job);
}

int udp_engine_start(const udp_hooks *hooks) {
  if (udp.e) return 0;
  udp.hooks = *hooks;
  udp_tx_init();
  udp.kicked = false;
  owner.next = NULL;
  udp.e = engine_start("udp", SWEEP_MS);
  if (!udp.e) return -errno;
  engine_add_owner(udp.e, &owner);
  return 0;
}

void udp_engine_stop(void) {
  if (!udp.e) return;
  engine_stop(udp.e);
  udp.e = NULL;
}

engine *udp_engine(void) {
  return udp.e;
}

// ---- called from the loop thread ----------------------------------------------------------

int udp_listen(const struct sockaddr_storage *addr, socklen_t len, const udp_listener_opts *opts,
               struct sockaddr_storage *bound) {
  int v6 = addr->ss_family == AF_INET6;
  int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  const struct sockaddr_in6 *a6 = (const void *)addr;
  // "::" takes both families (IPv4 arrives v4-mapped); another IPv6 address only its own.
  int v6only = v6 && !IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
  bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) == 0 &&
            setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof one) == 0;
  if (ok && v6)
    ok = setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) == 0 &&
         setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one) == 0 &&
         setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof one) == 0;
  // Bursts of new flows wait in the socket while the loop thread routes them:
  // a bigger buffer than the default (CAP_NET_ADMIN lifts rmem_max; without
  // it the kernel's cap applies).
  int rcvbuf = 4 << 20;
  if (ok && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  socklen_t bl = sizeof *bound;
  ok = ok && bind(fd, (const struct sockaddr *)addr, len) == 0 &&
       getsockname(fd, (struct sockaddr *)bound, &bl) == 0;
  listener *l = ok ? calloc(1, sizeof *l) : NULL;
  if (!l) {
    int err = ok ? ENOMEM : errno;
    close(fd);
    return -err;
  }
  l->fd = fd;
  l->family = v6 ? 6 : 4;
  l->opts = *opts;
  l->h.on_event = on_listener;
  pthread_mutex_lock(&udp.lock);
  l->id = ++udp.next_listener;
  if (engine_watch(udp.e, fd, EPOLLIN, &l->h) < 0) {
    int err = errno;
    pthread_mutex_unlock(&udp.lock);
    close(fd);
    free(l);
    return -err;
  }
  l->next = udp.listeners;
  udp.listeners = l;
  pthread_mutex_unlock(&udp.lock);
  return l->id;
}

static listener *listener_by_id(int id) {
  for (listener *l = udp.listeners; l; l = l->next)
    if (l->id == id) return l;
  return NULL;
}

int udp_listener_set(int id, const udp_listener_opts *opts) {
  pthread_mutex_lock(&udp.lock);
  listener *l = listener_by_id(id);
  if (l) l->opts = *opts;
  pthread_mutex_unlock(&udp.lock);
  return l ? 0 : -ENOENT;
}

void udp_listener_close(int id) {
  if (!udp.e) return;
  pthread_mutex_lock(&udp.lock);
  listener **pp = &udp.listeners;
  while (*pp && (*pp)->id != id) pp = &(*pp)->next;
  listener *l = *pp;
  if (l) {
    end_all("closed", true, l);
    *pp = l->next;
    close(l->fd);
    // The thread may hold an event fetched for it before this call took the
    // lock: it is freed by the thread, after that batch.
    l->closed = true;
    l->next = udp.dead_listeners;
    udp.dead_listeners = l;
    kick();  // the thread frees it
  }
  pthread_mutex_unlock(&udp.lock);
}

static int flow_out_socket(udp_flow *f) {
  // A SOCKS relay may be of the other family than the client.
  int v6 = f->mode == UDP_SOCKS ? f->target.ss_family == AF_INET6 : f->src.family == 6;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  uint32_t mark = f->l->opts.mark;
  f->h.on_event = on_out;
  if ((v6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      (mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) ||
      engine_watch(udp.e, fd, EPOLLIN, &f->h) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int udp_route(uint64_t id, const udp_route_spec *r) {
  pthread_mutex_lock(&udp.lock);
  udp_flow *f = flow_by_id(id);
  int res = 0;
  if (!f || f->state != ST_PENDING) {
    res = -ENOENT;
  } else {
    pending_unlink(f);
    f->mode = r->mode;
    if (r->mode == UDP_FORWARD || r->mode == UDP_SOCKS) {
      f->target = r->target;
      f->target_len = r->target_len;
      udp_key t;
      udp_key_from_sockaddr(&t, &r->target);
      if (r->mode == UDP_FORWARD && t.family != f->src.family) res = -EAFNOSUPPORT;
    }
    if (res == 0 && r->mode != UDP_REJECT) {
      int fd = flow_out_socket(f);
      if (fd < 0) res = fd;
      f->out_fd = fd;
      // Connected to the relay: only its datagrams come back.
      if (fd >= 0 && r->mode == UDP_SOCKS &&
          connect(fd, (const struct sockaddr *)&f->target, f->target_len) < 0)
        res = -errno;
    }
    if (res != 0 || r->mode == UDP_REJECT) {
      f->state = ST_REJECT;
      udp.c.drop_rejected += f->qn;
    } else {
      f->state = ST_ACTIVE;
      send_queue(f);
    }
    free_queue(f);
  }
  pthread_mutex_unlock(&udp.lock);
  return res;
}

int udp_flow_close(uint64_t id) {
  if (!udp.e) return -ENOENT;
  pthread_mutex_lock(&udp.lock);
  udp_flow *f = flow_by_id(id);
  if (f) {
    flow_end(f, "closed", true);
    kick();  // the thread frees it
  }
  pthread_mutex_unlock(&udp.lock);
  return f ? 0 : -ENOENT;
}

void udp_close_all(void) {
  if (!udp.e) return;
  pthread_mutex_lock(&udp.lock);
  end_all("shutdown", true, NULL);
  kick();  // the thread frees the dead flows
  pthread_mutex_unlock(&udp.lock);
}

void udp_counters_get(udp_counters *out) {
  pthread_mutex_lock(&udp.lock);
  *out = udp.c;
  pthread_mutex_unlock(&udp.lock);
}

udp_flow_info *udp_flows_list(int *n) {
  *n = 0;
  pthread_mutex_lock(&udp.lock);
  int total = udp.c.flows_live;
  udp_flow_info *out = total > 0 ? calloc(total, sizeof *out) : NULL;
  double now = engine_now_ms();
  for (listener *l = udp.listeners; out && l; l = l->next) {
    for (udp_flow *f = l->lru_head; f && *n < total; f = f->next) {
      out[(*n)++] = (udp_flow_info){.id = f->id,
                                    .listener = l->id,
                                    .src = f->src,
                                    .dst = f->first_dst,
                                    .action = mode_name(f),
                                    .pk_up = f->pk_up,
                                    .by_up = f->by_up,
                                    .pk_down = f->pk_down,
                                    .by_down = f->by_down,
                                    .age_ms = now - f->start_ms,
                                    .idle_ms = now - f->last_ms};
    }
  }
  pthread_mutex_unlock(&udp.lock);
  return out;
}
