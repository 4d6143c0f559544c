// SOCKS5 UDP ASSOCIATE relays on the UDP engine's thread (see socks_udp.h).
//
//   client ─► relay socket ─(header parsed, checked, stripped)─► destination's route
//   client ◄─ relay socket ◄─(header of the real source added)── outbound socket
//
// Only datagrams from the client's address count (RFC 1928 §7: the IP of
// the TCP control connection's peer; the port it declared, else its first
// datagram's). Fragments (FRAG ≠ 0) are dropped: clients do not send them
// and reassembly is a memory sink. Datagrams are received at an offset of
// HDR_MAX so a reply's header is written in front of its payload, no copy.
// Each way, a batch's datagrams to one socket leave in one sendmmsg, runs of
// same-size ones to one destination as one UDP_SEGMENT message (udp_send.h):
// up, after the header is stripped (or the client's header in front, to an
// upstream relay); down, each with its header, all to the client (the
// header's length is constant per source, so one remote's same-size
// payloads make same-size datagrams).
//
// Threading: an owner on the UDP engine's thread (udp_engine()): handlers,
// tick and round run there; open, route and close on the loop thread; all of
// them under su.lock.
#define _GNU_SOURCE
#include "socks_udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"
#include "udp_send.h"

#define HDR_MAX 262  // RSV(2) FRAG ATYP LEN NAME(255) PORT(2)
#define DGRAM_MAX 65536
#define BATCH UDP_TX_BATCH  // datagrams per recvmmsg/sendmmsg
#define BATCHES_PER_WAKE 2  // then other sockets get their turn (level-triggered)
#define GSO_UP 1            // su_assoc.gso_off: the kernel refused a segmented send up
#define GSO_DOWN 2          // ... or down (to the client)
#define DESTS_MAX 64        // per association; over it the least recently used goes
#define QUEUE_MAX 32        // datagrams kept per destination while JS routes it
#define QUEUE_BYTES (64 * 1024)
#define UPSTREAMS_MAX 4  // upstream relays per association

enum { D_PENDING, D_ACTIVE, D_REJECT };

typedef struct su_queued {
  struct su_queued *next;
  size_t len;
  uint8_t data[];
} su_queued;

typedef struct su_assoc su_assoc;
typedef struct su_dest su_dest;
typedef struct su_up su_up;

struct su_dest {
  su_dest *next;
  su_assoc *a;
  engine_handler h;  // on fd: FORWARD has a socket of its own
  uint32_t id;
  int state, mode, fd;
  su_up *up;  // UPSTREAM
  struct sockaddr_storage target;
  socklen_t target_len;
  // "00 00 00 ATYP ADDR PORT" as the client sent it: the destination's key,
  // and the header of a forwarded destination's replies.
  uint8_t hdr[HDR_MAX];
  size_t hlen;
  su_queued *qhead, *qtail;
  int qn;
  size_t qbytes;
  double last_ms;
};

// A socks5 upstream's relay: one socket per association and relay, so the
// upstream sees one client port (it admits only that one, as we do).
struct su_up {
  engine_handler h;
  su_assoc *a;
  int fd;
  struct sockaddr_storage target;
  socklen_t target_len;
};

struct su_assoc {
  su_assoc *next;
  su_up ups[UPSTREAMS_MAX];
  int nups;
  engine_handler h;      // the relay socket
  engine_handler dh[2];  // the direct sockets, IPv4 and IPv6
  int fd, dfd[2];
  uint64_t id;
  udp_key client;  // port 0 until the first datagram when the client declared none
  int idle_ms;
  uint32_t mark;
  su_dest *dests;
  int ndests;
  uint32_t next_dest;
  bool dead, relay_v6;
  uint8_t gso_off;  // GSO_UP | GSO_DOWN: send that way one datagram at a time
  double start_ms, last_ms;
  uint64_t pk_up, by_up, pk_down, by_down;
};

static struct {
  pthread_mutex_t lock;
  engine *e;  // the engine the owner was added to
  socks_udp_hooks hooks;
  su_assoc *live, *dead;
  su_dest *dead_dests;
  uint64_t next_id;
  socks_udp_counters c;
} su = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint8_t rbuf[BATCH][HDR_MAX + DGRAM_MAX];
static struct sockaddr_storage rnames[BATCH];
static struct mmsghdr rmsgs[BATCH];
static struct iovec riovs[BATCH];

#define CONTAINER(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

static int recv_batch(int fd) {
  for (int i = 0; i < BATCH; i++) {
    riovs[i] = (struct iovec){rbuf[i] + HDR_MAX, DGRAM_MAX};
    rmsgs[i].msg_hdr = (struct msghdr){.msg_name = &rnames[i],
                                       .msg_namelen = sizeof rnames[i],
                                       .msg_iov = &riovs[i],
                                       .msg_iovlen = 1};
    rmsgs[i].msg_len = 0;
  }
  return recvmmsg(fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
}

static bool same_ip(const udp_key *a, const udp_key *b) {
  return a->family == b->family && memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

int socks_udp_parse_header(const uint8_t *p, size_t n) {
  if (n < 4 || p[0] != 0 || p[1] != 0) return 0;
  if (p[2] != 0) return -1;
  size_t h;
  if (p[3] == 1)
    h = 10;
  else if (p[3] == 4)
    h = 22;
  else if (p[3] == 3 && n >= 5 && p[4] > 0)
    h = 7 + (size_t)p[4];
  else
    return 0;
  if (n < h) return 0;
  if (p[3] == 3)
    for (size_t i = 5; i < h - 2; i++)
      if (p[i] <= 0x20 || p[i] >= 0x7f) return 0;  // a name for resolution is printable ASCII
  if (p[h - 2] == 0 && p[h - 1] == 0) return 0;    // port 0 is nobody
  return (int)h;
}

void socks_udp_header_dest(const uint8_t *hdr, size_t hlen, char host[256], uint16_t *port) {
  if (hdr[3] == 1) {
    inet_ntop(AF_INET, hdr + 4, host, 256);
  } else if (hdr[3] == 4) {
    inet_ntop(AF_INET6, hdr + 4, host, 256);
  } else {
    memcpy(host, hdr + 5, hdr[4]);
    host[hdr[4]] = 0;
  }
  *port = (uint16_t)(hdr[hlen - 2] << 8 | hdr[hlen - 1]);
}

size_t socks_udp_put_header(uint8_t *h, const udp_key *k) {
  size_t alen = k->family == 4 ? 4 : 16;
  h[0] = h[1] = h[2] = 0;
  h[3] = k->family == 4 ? 1 : 4;
  memcpy(h + 4, k->addr, alen);
  h[4 + alen] = k->port >> 8;
  h[5 + alen] = k->port & 0xff;
  return 6 + alen;
}

size_t socks_udp_take_header(const uint8_t *p, size_t n, udp_key *from) {
  int h = socks_udp_parse_header(p, n);
  if (h <= 0 || p[3] == 3) return 0;
  memset(from, 0, sizeof *from);
  from->family = p[3] == 1 ? 4 : 6;
  memcpy(from->addr, p + 4, from->family == 4 ? 4 : 16);
  from->port = (uint16_t)(p[h - 2] << 8 | p[h - 1]);
  return (size_t)h;
}

// The header of a reply from `from`, written just in front of `at`; its length.
static size_t put_header(uint8_t *at, const udp_key *from) {
  uint8_t h[22];
  size_t n = socks_udp_put_header(h, from);
  memcpy(at - n, h, n);
  return n;
}

// ---- ending -------------------------------------------------------------------------------

static void free_queue(su_dest *d) {
  for (su_queued *q = d->qhead, *next; q; q = next) {
    next = q->next;
    free(q);
  }
  d->qhead = d->qtail = NULL;
  d->qn = 0;
  d->qbytes = 0;
}

// Its memory waits for the end of the batch: a fetched event may point to it.
static void dest_end(su_dest *d) {
  if (d->fd >= 0) close(d->fd);
  d->fd = -1;
  free_queue(d);
  d->next = su.dead_dests;
  su.dead_dests = d;
}

static void assoc_end(su_assoc *a, const char *reason, bool report) {
  if (a->dead) return;
  socks_udp_event *ev = report ? su.hooks.alloc() : NULL;
  if (ev) {
    ev->kind = SU_EV_END;
    ev->assoc = a->id;
    ev->reason = reason;
    ev->pk_up = a->pk_up;
    ev->by_up = a->by_up;
    ev->pk_down = a->pk_down;
    ev->by_down = a->by_down;
    ev->ms = engine_now_ms() - a->start_ms;
    su.hooks.emit(ev);
  }
  su_assoc **pp = &su.live;
  while (*pp && *pp != a) pp = &(*pp)->next;
  if (*pp) *pp = a->next;
  for (su_dest *d = a->dests, *next; d; d = next) {
    next = d->next;
    dest_end(d);
  }
  a->dests = NULL;
  close(a->fd);
  for (int i = 0; i < 2; i++)
    if (a->dfd[i] >= 0) close(a->dfd[i]);
  for (int i = 0; i < a->nups; i++) close(a->ups[i].fd);
  a->dead = true;
  a->next = su.dead;
  su.dead = a;
  su.c.assocs_live--;
}

static void free_dead(void) {
  for (su_assoc *a = su.dead, *next; a; a = next) {
    next = a->next;
    free(a);
  }
  su.dead = NULL;
  for (su_dest *d = su.dead_dests, *next; d; d = next) {
    next = d->next;
    free(d);
  }
  su.dead_dests = NULL;
}

// ---- client → destination -----------------------------------------------------------------

static void count_up(su_assoc *a, ssize_t n) {
  if (n < 0) {
    su.c.drop_send_failed++;
    return;
  }
  a->pk_up++;
  a->by_up += n;
  su.c.pk_up++;
  su.c.by_up += n;
}

static void send_up(su_dest *d, const uint8_t *data, size_t len) {
  su_assoc *a = d->a;
  ssize_t n;
  if (d->mode == SU_DIRECT) {
    int fd = a->dfd[d->target.ss_family == AF_INET6];
    n = sendto(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&d->target,
               d->target_len);
  } else if (d->mode == SU_FORWARD) {
    n = send(d->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  } else {
    // The upstream's relay reads the same header the client wrote.
    struct iovec iov[2] = {{d->hdr, d->hlen}, {(void *)data, len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    n = sendmsg(d->up->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) n -= (ssize_t)d->hlen;
  }
  count_up(a, n);
}

static void enqueue(su_dest *d, const uint8_t *data, size_t len) {
  if (d->qn >= QUEUE_MAX || d->qbytes + len > QUEUE_BYTES) {
    su.c.drop_queue_full++;
    return;
  }
  su_queued *q = malloc(sizeof *q + len);
  if (!q) {
    su.c.drop_queue_full++;
    return;
  }
  q->next = NULL;
  q->len = len;
  memcpy(q->data, data, len);
  if (d->qtail)
    d->qtail->next = q;
  else
    d->qhead = q;
  d->qtail = q;
  d->qn++;
  d->qbytes += len;
}

static su_dest *dest_find(su_assoc *a, const uint8_t *hdr, size_t hlen) {
  for (su_dest *d = a->dests; d; d = d->next)
    if (d->hlen == hlen && memcmp(d->hdr + 3, hdr + 3, hlen - 3) == 0) return d;
  return NULL;
}

static void dest_unlink(su_assoc *a, su_dest *d) {
  su_dest **pp = &a->dests;
  while (*pp && *pp != d) pp = &(*pp)->next;
  if (*pp) *pp = d->next;
  a->ndests--;
}

static su_dest *dest_new(su_assoc *a, const uint8_t *hdr, size_t hlen, double now) {
  if (a->ndests >= DESTS_MAX) {
    // The list is newest first and the clock coarse (a burst shares one ms):
    // on a tie the older destination goes, never the newest.
    su_dest *lru = a->dests;
    for (su_dest *d = a->dests; d; d = d->next)
      if (d->last_ms <= lru->last_ms) lru = d;
    dest_unlink(a, lru);
    dest_end(lru);
    su.c.dests_evicted++;
  }
  su_dest *d = calloc(1, sizeof *d);
  socks_udp_event *ev = d ? su.hooks.alloc() : NULL;
  if (!ev) {
    free(d);
    su.c.drop_queue_full++;
    return NULL;
  }
  d->a = a;
  d->id = ++a->next_dest;
  d->fd = -1;
  d->state = D_PENDING;
  d->last_ms = now;
  memcpy(d->hdr, hdr, hlen);
  d->hdr[0] = d->hdr[1] = d->hdr[2] = 0;
  d->hlen = hlen;
  d->next = a->dests;
  a->dests = d;
  a->ndests++;
  ev->kind = SU_EV_DEST;
  ev->assoc = a->id;
  ev->dest = d->id;
  socks_udp_header_dest(hdr, hlen, ev->host, &ev->port);
  su.hooks.emit(ev);
  return d;
}

static udp_tx tx;         // the UDP thread's send batch (under su.lock)
static int tx_fd = -1;    // where it goes
static su_dest *tx_last;  // the destination of its last datagram

// Send the batch built since the last flush (up, or down to the client).
static void tx_flush(su_assoc *a, bool down) {
  if (tx_fd < 0) return;
  udp_tx_result r;
  udp_tx_send(&tx, tx_fd, &r);
  tx_fd = -1;
  tx_last = NULL;
  if (r.gso_refused) {
    a->gso_off |= down ? GSO_DOWN : GSO_UP;
    su.c.gso_refused++;
  }
  su.c.drop_send_failed += r.failed;
  if (down) {
    a->pk_down += r.pk;
    a->by_down += r.by;
    su.c.pk_down += r.pk;
    su.c.by_down += r.by;
  } else {
    a->pk_up += r.pk;
    a->by_up += r.by;
    su.c.pk_up += r.pk;
    su.c.by_up += r.by;
  }
}

// Add a datagram of an active destination to the batch (sent on a change of socket).
static void tx_up(su_dest *d, uint8_t *data, size_t len) {
  su_assoc *a = d->a;
  int fd = d->mode == SU_DIRECT    ? a->dfd[d->target.ss_family == AF_INET6]
           : d->mode == SU_FORWARD ? d->fd
                                   : d->up->fd;
  if (fd != tx_fd || udp_tx_full(&tx)) tx_flush(a, false);
  tx_fd = fd;
  bool same = tx_last == d;
  tx_last = d;
  bool gso = !(a->gso_off & GSO_UP);
  if (d->mode == SU_DIRECT)
    udp_tx_add(&tx, gso, same, &d->target, d->target_len, NULL, 0, data, len);
  else if (d->mode == SU_FORWARD)
    udp_tx_add(&tx, gso, same, NULL, 0, NULL, 0, data, len);
  else  // the upstream's relay reads the same header the client wrote
    udp_tx_add(&tx, gso, same, NULL, 0, d->hdr, d->hlen, data, len);
}

static void drain_relay(su_assoc *a) {
  if (a->dead) return;
  double now = engine_now_ms();
  for (int b = 0; b < BATCHES_PER_WAKE; b++) {
    int n = recv_batch(a->fd);
    if (n <= 0) return;
    for (int i = 0; i < n && !a->dead; i++) {
      udp_key src;
      udp_key_from_sockaddr(&src, &rnames[i]);
      if (!same_ip(&src, &a->client) || (a->client.port != 0 && src.port != a->client.port)) {
        su.c.drop_foreign++;
        continue;
      }
      uint8_t *p = rbuf[i] + HDR_MAX;
      size_t len = rmsgs[i].msg_len;
      int h = (rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : socks_udp_parse_header(p, len);
      if (h <= 0) {
        if (h < 0)
          su.c.drop_fragment++;
        else
          su.c.drop_malformed++;
        continue;
      }
      if (a->client.port == 0) a->client.port = src.port;
      a->last_ms = now;
      su_dest *d = dest_find(a, p, (size_t)h);
      if (!d) {
        tx_flush(a, false);  // a new destination may evict one the batch sends to
        if (!(d = dest_new(a, p, (size_t)h, now))) continue;
      }
      d->last_ms = now;
      if (d->state == D_PENDING)
        enqueue(d, p + h, len - h);
      else if (d->state == D_REJECT)
        su.c.drop_rejected++;
      else
        tx_up(d, p + h, len - h);
    }
    tx_flush(a, false);
    if (n < BATCH) return;
  }
}

// ---- destination → client -----------------------------------------------------------------

// The client's address as the relay socket sends to it.
static socklen_t client_name(su_assoc *a, struct sockaddr_storage *ss) {
  socklen_t sl = udp_key_to_sockaddr(&a->client, ss);
  if (a->relay_v6 && a->client.family == 4) {
    // A relay socket on "::ffff:a.b.c.d" (a dual-stack listener) sends to the client v4-mapped.
    struct sockaddr_in6 m = {.sin6_family = AF_INET6, .sin6_port = htons(a->client.port)};
    m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&m.sin6_addr.s6_addr[12], a->client.addr, 4);
    memcpy(ss, &m, sizeof m);
    sl = sizeof m;
  }
  return sl;
}

// Replies on fd: a direct socket's (d NULL, pass false: the header names
// the source), a forwarded destination's (d: its own header), an upstream
// relay's (pass: the upstream's header, checked, as it is).
static void drain_out(su_assoc *a, su_dest *d, int fd, bool pass) {
  double now = engine_now_ms();
  struct sockaddr_storage client;
  socklen_t client_len = client_name(a, &client);
  for (int b = 0; b < BATCHES_PER_WAKE && !a->dead; b++) {
    int n = recv_batch(fd);
    if (n <= 0) return;
    // Every datagram goes to the client: same-size ones (whatever their
    // source) in one segmented message.
    bool gso = !(a->gso_off & GSO_DOWN);
    for (int i = 0; i < n; i++) {
      uint8_t *p = rbuf[i] + HDR_MAX;
      size_t len = rmsgs[i].msg_len;
      if (rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        su.c.drop_malformed++;
        continue;
      }
      if (a->client.port == 0) continue;  // cannot happen: a destination needs a datagram first
      if (pass) {
        if (socks_udp_parse_header(p, len) <= 0) {
          su.c.drop_malformed++;
          continue;
        }
      } else if (!d) {
        udp_key from;
        udp_key_from_sockaddr(&from, &rnames[i]);
        size_t h = put_header(p, &from);
        p -= h;
        len += h;
      } else {
        memcpy(p - d->hlen, d->hdr, d->hlen);
        p -= d->hlen;
        len += d->hlen;
      }
      tx_fd = a->fd;
      udp_tx_add(&tx, gso, true, &client, client_len, NULL, 0, p, len);
      a->last_ms = now;
      if (d) d->last_ms = now;
    }
    tx_flush(a, true);
    if (n < BATCH) return;
  }
}

// The handlers: each event under su.lock (the loop thread's calls take it too).
static void on_relay(engine_handler *h, uint32_t events) {
  (void)events;
  pthread_mutex_lock(&su.lock);
  drain_relay(CONTAINER(h, su_assoc, h));
  pthread_mutex_unlock(&su.lock);
}

static void on_dest(engine_handler *h, uint32_t events) {
  (void)events;
  su_dest *d = CONTAINER(h, su_dest, h);
  pthread_mutex_lock(&su.lock);
  if (d->fd >= 0 && !d->a->dead) drain_out(d->a, d, d->fd, false);
  pthread_mutex_unlock(&su.lock);
}

static void on_up(engine_handler *h, uint32_t events) {
  (void)events;
  su_up *u = CONTAINER(h, su_up, h);
  pthread_mutex_lock(&su.lock);
  if (!u->a->dead) drain_out(u->a, NULL, u->fd, true);
  pthread_mutex_unlock(&su.lock);
}

static void on_direct(su_assoc *a, int k) {
  pthread_mutex_lock(&su.lock);
  if (!a->dead && a->dfd[k] >= 0) drain_out(a, NULL, a->dfd[k], false);
  pthread_mutex_unlock(&su.lock);
}
static void on_direct4(engine_handler *h, uint32_t events) {
  (void)events;
  on_direct(CONTAINER(h, su_assoc, dh[0]), 0);
}
static void on_direct6(engine_handler *h, uint32_t events) {
  (void)events;
  on_direct(CONTAINER(h, su_assoc, dh[1]), 1);
}

// ---- the thread's hooks -------------------------------------------------------------------

static void tick(engine_owner *o, double now) {
  (void)o;
  pthread_mutex_lock(&su.lock);
  for (su_assoc *a = su.live, *next; a; a = next) {
    next = a->next;
    if (now - a->last_ms >= a->idle_ms) assoc_end(a, "idle", true);
  }
  pthread_mutex_unlock(&su.lock);
}

static bool busy(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&su.lock);
  bool live = su.live != NULL;
  pthread_mutex_unlock(&su.lock);
  return live;
}

// After each pass: what ended in it can no longer be named by an event.
static void round_end(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&su.lock);
  free_dead();
  pthread_mutex_unlock(&su.lock);
}

static void stop(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&su.lock);
  while (su.live) assoc_end(su.live, "shutdown", false);
  free_dead();
  su.e = NULL;  // a later engine gets the owner again
  pthread_mutex_unlock(&su.lock);
}

static engine_owner owner = {.round = round_end, .tick = tick, .busy = busy, .stop = stop};

int socks_udp_init(const socks_udp_hooks *h) {
  engine *e = udp_engine();
  if (!e) return -ENOENT;
  pthread_mutex_lock(&su.lock);
  bool add = su.e != e;
  su.e = e;
  su.hooks = *h;
  pthread_mutex_unlock(&su.lock);
  if (add) {
    owner.next = NULL;
    engine_add_owner(e, &owner);
  }
  return 0;
}

// ---- called from the loop thread ----------------------------------------------------------

static int out_socket(int family, uint32_t mark, engine_handler *h,
                      void (*fn)(engine_handler *, uint32_t)) {
  int v6 = family == AF_INET6;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  h->on_event = fn;
  int err = 0;
  if ((v6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      (mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0))
    err = -errno;
  if (!err && engine_watch(su.e, fd, EPOLLIN, h) < 0) err = -errno;
  if (err) {
    close(fd);
    return err;
  }
  return fd;
}

int socks_udp_open(const struct sockaddr_storage *bind_addr, socklen_t len, const udp_key *client,
                   int idle_ms, uint32_t mark, uint64_t *id, struct sockaddr_storage *bound) {
  su_assoc *a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  int fd = socket(bind_addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  socklen_t bl = sizeof *bound;
  if (fd < 0 || bind(fd, (const struct sockaddr *)bind_addr, len) < 0 ||
      getsockname(fd, (struct sockaddr *)bound, &bl) < 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    free(a);
    return -err;
  }
  a->fd = fd;
  a->relay_v6 = bind_addr->ss_family == AF_INET6;
  a->dfd[0] = a->dfd[1] = -1;
  a->client = *client;
  a->idle_ms = idle_ms;
  a->mark = mark;
  a->h.on_event = on_relay;
  pthread_mutex_lock(&su.lock);
  int err = engine_watch(su.e, fd, EPOLLIN, &a->h) < 0 ? -errno : 0;
  if (err) {
    pthread_mutex_unlock(&su.lock);
    close(fd);
    free(a);
    return err;
  }
  a->id = ++su.next_id;
  a->start_ms = a->last_ms = engine_now_ms();
  a->next = su.live;
  su.live = a;
  su.c.assocs_total++;
  su.c.assocs_live++;
  *id = a->id;
  pthread_mutex_unlock(&su.lock);
  return 0;
}

static su_assoc *assoc_by_id(uint64_t id) {
  for (su_assoc *a = su.live; a; a = a->next)
    if (a->id == id) return a;
  return NULL;
}

// The association's socket to an upstream relay (connected: only its datagrams come back).
static int upstream_socket(su_assoc *a, const struct sockaddr_storage *target, socklen_t len,
                           su_up **out) {
  for (int i = 0; i < a->nups; i++) {
    if (a->ups[i].target_len == len && memcmp(&a->ups[i].target, target, len) == 0) {
      *out = &a->ups[i];
      return 0;
    }
  }
  if (a->nups >= UPSTREAMS_MAX) return -EMFILE;
  su_up *u = &a->ups[a->nups];
  int fd = out_socket(target->ss_family, a->mark, &u->h, on_up);
  if (fd < 0) return fd;
  if (connect(fd, (const struct sockaddr *)target, len) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  u->a = a;
  u->fd = fd;
  u->target = *target;
  u->target_len = len;
  a->nups++;
  *out = u;
  return 0;
}

int socks_udp_route(uint64_t assoc, uint32_t dest, int mode, const struct sockaddr_storage *target,
                    socklen_t len) {
  pthread_mutex_lock(&su.lock);
  su_assoc *a = assoc_by_id(assoc);
  su_dest *d = a ? a->dests : NULL;
  while (d && d->id != dest) d = d->next;
  int res = 0;
  if (!d || d->state != D_PENDING) {
    res = -ENOENT;
  } else {
    d->mode = mode;
    if (mode != SU_REJECT) {
      d->target = *target;
      d->target_len = len;
    }
    if (mode == SU_DIRECT) {
      int k = target->ss_family == AF_INET6;
      if (a->dfd[k] < 0) {
        int fd = out_socket(target->ss_family, a->mark, &a->dh[k], k ? on_direct6 : on_direct4);
        if (fd < 0) res = fd;
        a->dfd[k] = fd;
      }
    } else if (mode == SU_FORWARD) {
      int fd = out_socket(target->ss_family, a->mark, &d->h, on_dest);
      // Connected: the kernel keeps other sources out of a forwarded destination's replies.
      res = fd >= 0 && connect(fd, (const struct sockaddr *)target, len) < 0 ? -errno
            : fd < 0                                                         ? fd
                                                                             : 0;
      if (res != 0 && fd >= 0) close(fd);
      d->fd = res == 0 ? fd : -1;
    } else if (mode == SU_UPSTREAM) {
      res = upstream_socket(a, target, len, &d->up);
    }
    if (res != 0 || mode == SU_REJECT) {
      d->state = D_REJECT;
      su.c.drop_rejected += d->qn;
    } else {
      d->state = D_ACTIVE;
      for (su_queued *q = d->qhead; q; q = q->next) send_up(d, q->data, q->len);
    }
    free_queue(d);
  }
  pthread_mutex_unlock(&su.lock);
  return res;
}

int socks_udp_close(uint64_t assoc) {
  pthread_mutex_lock(&su.lock);
  su_assoc *a = assoc_by_id(assoc);
  if (a) assoc_end(a, "closed", true);
  pthread_mutex_unlock(&su.lock);
  // Freed after the thread's next batch (or at its stop).
  return a ? 0 : -ENOENT;
}

void socks_udp_counters_get(socks_udp_counters *out) {
  pthread_mutex_lock(&su.lock);
  *out = su.c;
  pthread_mutex_unlock(&su.lock);
}
