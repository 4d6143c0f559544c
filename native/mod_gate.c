// The gate: admission of every connection (maxConnections, maxPerSource, the
// connection ids) for all listeners, and the native forward: a `forward`
// listener whose connections run no JS at all. C accepts until EAGAIN,
// checks the allow list and the limits, dials the fixed target (SO_MARK,
// connect timeout) and hands the pair to relay.c. JS hears of a connection
// only once it is over, in batches (one call for every connection finished
// since the last), for the access line and the stats.
// The native SOCKS5 handshake: a `socks`/`mixed` listener whose connections
// C greets, authenticates (RFC 1929 against the users JS handed over) and
// reads the request of; JS is called once per batch of CONNECT requests for
// their routes (onSocksRequests) and answers each with a dial, a refusal or
// "JS takes it"; everything else (SOCKS4, HTTP, UDP ASSOCIATE) is handed to
// JS with the bytes read so far.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dec.h"
#include "relay.h"
#include "socks5.h"
#include "ugate.h"

// ---- admission: one count for every listener type ----------------------------
// Live connections per source IP (the text accept gives JS), in a small chained
// hash table; a source's entry exists only while it has connections.
typedef struct src_count src_count;
struct src_count {
  src_count *next;
  int n;
  char ip[INET6_ADDRSTRLEN];
};
#define SRC_BUCKETS 256

static struct {
  int max, per_source;  // 0 = no limit
  int live;
  double total;  // connections admitted since start: also the latest id
  src_count *bucket[SRC_BUCKETS];
} adm;

static src_count **src_slot(const char *ip) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (const char *p = ip; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  src_count **s = &adm.bucket[h % SRC_BUCKETS];
  while (*s && strcmp((*s)->ip, ip)) s = &(*s)->next;
  return s;
}

// The new connection's id (> 0), or -1 (maxConnections) / -2 (maxPerSource).
static double admit(const char *ip) {
  if (adm.max > 0 && adm.live >= adm.max) return -1;
  src_count **s = src_slot(ip);
  if (adm.per_source > 0 && *s && (*s)->n >= adm.per_source) return -2;
  if (!*s) {
    src_count *c = calloc(1, sizeof *c);
    if (!c) return -1;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    *s = c;
  }
  (*s)->n++;
  adm.live++;
  return ++adm.total;
}

static void release(const char *ip) {
  src_count **s = src_slot(ip);
  if (!*s) return;
  adm.live--;
  if (--(*s)->n > 0) return;
  src_count *gone = *s;
  *s = gone->next;
  free(gone);
}

// admit(ip): the connection's id, or -1 / -2 when a limit refuses it.
static JSValue js_admit(UG_JS_PARAMS) {
  const char *ip = JS_ToCString(ctx, argv[0]);
  if (!ip) return JS_EXCEPTION;
  double id = strlen(ip) < INET6_ADDRSTRLEN ? admit(ip) : -1;
  JS_FreeCString(ctx, ip);
  return JS_NewFloat64(ctx, id);
}

static JSValue js_release(UG_JS_PARAMS) {
  const char *ip = JS_ToCString(ctx, argv[0]);
  if (!ip) return JS_EXCEPTION;
  release(ip);
  JS_FreeCString(ctx, ip);
  return JS_UNDEFINED;
}

static JSValue js_set_limits(UG_JS_PARAMS) {
  if (JS_ToInt32(ctx, &adm.max, argv[0]) || JS_ToInt32(ctx, &adm.per_source, argv[1]))
    return JS_EXCEPTION;
  return JS_UNDEFINED;
}

// ---- the native forward ----------------------------------------------------------
typedef struct {
  uint8_t family, len;  // 4 or 6; prefix length
  uint8_t net[16];
} cidr;

// One of ugate's listening sockets, which a native SOCKS dial never connects to.
typedef struct {
  uint8_t family;  // AF_INET or AF_INET6
  uint8_t addr[16];
  uint16_t port;
} own_addr;

typedef struct fwd_listener fwd_listener;
enum { KIND_FORWARD, KIND_SOCKS };

struct fwd_listener {
  fwd_listener *next;  // the serving ones
  int fd;              // -1 once stopped
  int refs;            // 1 while serving, + 1 per live connection
  int kind;
  char *name, *dst;  // for the access line and the connection list (dst: forward only)
  char *type;        // the listener's type, for the connection list
  struct sockaddr_storage target;  // forward only
  socklen_t target_len;
  int mark, timeout_ms, idle_ms, handshake_ms;
  bool splice;
  cidr *allow;
  int nallow;
  // SOCKS: the accounts, "ULEN USER PLEN PASS" records (RFC 1929's own layout)
  uint8_t *users;
  size_t users_len;
  own_addr *own;  // SOCKS: ugate's listeners (isOwnAddress's list)
  int nown;
  double resume_ms;  // > 0: paused (out of fds) until then
};

#define HUP_WATCH_MS 50  // a dial or lookup waiting this long: watch its client for a hang-up

enum { HANDSHAKE, RESOLVING, DIALING, RELAYING, FINISHED };
enum { S_GREET, S_AUTH, S_REQUEST };

// A SOCKS connection's handshake: what it has read and not used yet. Freed
// when the handshake is over (a relayed connection keeps none of it).
#define HS_LIMIT 1024  // as the JS handshake's HANDSHAKE_LIMIT
typedef struct {
  size_t len;
  int state;
  socks5_request req;
  // The dial: the addresses to try in order (sockaddr_in for IPv4), the next
  // one, and why the last one failed (the reason if none is left).
  ug_lookup *lookup;  // while RESOLVING
  struct sockaddr_in6 addrs[UG_MAX_ADDRS];
  uint8_t naddrs, next;
  bool watched;  // the client's one-shot watch was set (and fired: socks_read runs)
  uint16_t dial_port;
  const char *why;
  int why_err;
  uint8_t buf[HS_LIMIT];  // last: a reused state zeroes all but this (new_hs)
} socks_hs;

// A CONNECT's route as JS answered it: shared (refs) by the connections it
// routed and, when JS said it may be kept, by the kept routes (below).
typedef struct {
  int refs;
  int reply;  // >= 0: refuse with this SOCKS reply (reason rejected); -1: dial addr
  int port;
  int hit;  // kept: its rule's slot in kr.hits
  char *addr, *rule, *action, *via, *dns_name;
} socks_route;

typedef struct fconn fconn;
struct fconn {
  relay r;
  fconn *prev, *next;    // live: from accept until JS was told
  fconn *tprev, *tnext;  // dialing, by deadline
  fconn *done_next;      // finished, waiting for the next batch to JS
  fconn *ask_next;       // SOCKS: waiting for JS (a route, or to take it)
  fwd_listener *l;
  socks_hs *hs;        // SOCKS, until the relay (or the end)
  socks_route *route;  // SOCKS, once routed
  // SOCKS, for the access line and the connection list (NULL: not known /
  // none); rule, action, via and dns_name are route's
  char *user, *cdst;
  const char *rule, *action, *via, *dns_name;
  uint8_t user_len;  // user may hold a NUL (it is UTF-8)
  uint8_t ask;       // what JS is asked (ASK_*)
  uint8_t family;    // the client's, for JS (4 or 6)
  uint16_t cport;    // the client's port
  double id, start_ms, deadline_ms;
  int client, upstream;  // owned here while DIALING
  int stage;
  bool hup_watched;                // the client's hang-up watch was set (watch_hangup)
  double hup_ms;                   // set the hang-up watch then if still dialing (0: no)
  int err;                         // dial failure's errno (reason "connect-error")
  const char *reason;              // set when the connection ended before the relay
  char src[INET6_ADDRSTRLEN + 8];  // IP:PORT ([v6]:PORT)
  char ip[INET6_ADDRSTRLEN];
};

static struct {
  fwd_listener *listeners;
  fconn *live;
  int nlive;
  fconn *dial_head, *dial_tail;
  int timerfd;
  double armed_ms;   // the timerfd's deadline, 0 = disarmed
  double hup_next;   // no connection's hup_ms is earlier (0 = none pending)
  JSValue cb;        // onForwardEvents: every batch
  JSValue socks_cb;  // onSocksRequests: the SOCKS connections waiting for JS
  fconn *ask_head, *ask_tail;
  // Finished connections, pushed by both threads; one job posted per batch.
  pthread_mutex_t lock;
  fconn *done_head, *done_tail;
  ug_job job;
  bool job_posted;
  // Refusals and pauses of this loop turn, told with the next batch.
  JSValue events;
  JSValue empty;  // [], every batch's empty list
  uint32_t nevents;
} fw = {.timerfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void flush_batch(JSContext *ctx, bool take_done);
// After a loop event: the SOCKS asks and the events (the finished connections wait for the job).
static inline void flush(JSContext *ctx) {
  flush_batch(ctx, false);
}

static void listener_unref(fwd_listener *l) {
  if (--l->refs > 0) return;
  free(l->name);
  free(l->dst);
  free(l->type);
  free(l->allow);
  free(l->users);
  free(l->own);
  free(l);
}

static void dial_unlink(fconn *c) {
  if (!c->tprev && fw.dial_head != c) return;  // not listed: ended before its connect waited
  if (c->tprev)
    c->tprev->tnext = c->tnext;
  else
    fw.dial_head = c->tnext;
  if (c->tnext)
    c->tnext->tprev = c->tprev;
  else
    fw.dial_tail = c->tprev;
  c->tprev = c->tnext = NULL;
}

// Ordered by deadline; every listener's timeout is fixed, so this is an append.
static void dial_insert(fconn *c) {
  fconn *after = fw.dial_tail;
  while (after && after->deadline_ms > c->deadline_ms) after = after->tprev;
  c->tprev = after;
  c->tnext = after ? after->tnext : fw.dial_head;
  if (c->tnext)
    c->tnext->tprev = c;
  else
    fw.dial_tail = c;
  if (after)
    after->tnext = c;
  else
    fw.dial_head = c;
}

static void on_timer(JSContext *ctx, int fd, uint32_t events, void *arg);
static void dial(JSContext *ctx, fconn *c, const struct sockaddr *to, socklen_t to_len);
static void socks_dial_failed(JSContext *ctx, fconn *c, const char *reason, int err);

// The timerfd wakes for the earliest dial deadline or paused listener. It is
// re-armed only when that moves earlier (no syscall per connection) and
// watched only while armed (an idle gateway has nothing pending here).
static void arm_timer(JSContext *ctx) {
  double next = fw.dial_head ? fw.dial_head->deadline_ms : 0;
  if (fw.hup_next > 0 && (next == 0 || fw.hup_next < next)) next = fw.hup_next;
  for (fwd_listener *l = fw.listeners; l; l = l->next)
    if (l->resume_ms > 0 && (next == 0 || l->resume_ms < next)) next = l->resume_ms;
  if (next == 0 || (fw.armed_ms > 0 && fw.armed_ms <= next)) return;
  double ms = next - ug_now_ms();
  if (ms < 1) ms = 1;
  time_t sec = (time_t)(ms / 1000);
  struct itimerspec its = {
      .it_value = {.tv_sec = sec, .tv_nsec = (long)((ms - sec * 1000.0) * 1e6)}};
  if (timerfd_settime(fw.timerfd, 0, &its, NULL) < 0) return;
  if (fw.armed_ms == 0) UG_CHECK(ug_loop_watch_c(ctx, fw.timerfd, EPOLLIN, on_timer, NULL) == 0);
  fw.armed_ms = next;
}

// Loop thread or relay thread: queue c for the next batch to JS.
static void push_done(fconn *c) {
  pthread_mutex_lock(&fw.lock);
  c->done_next = NULL;
  if (fw.done_tail)
    fw.done_tail->done_next = c;
  else
    fw.done_head = c;
  fw.done_tail = c;
  bool post = !fw.job_posted;
  fw.job_posted = true;
  pthread_mutex_unlock(&fw.lock);
  if (post) ug_loop_post(&fw.job);
}

static void on_relay_done(relay *r) {  // relay thread
  fconn *c = UG_CONTAINER_OF(r, fconn, r);
  c->stage = FINISHED;
  push_done(c);
}

static void reset_fd(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

// Freed handshake states are kept (up to HS_SPARE, ≤ 72 KB) for the next
// connections. Each is ≈ 2.2 KB, a size musl's malloc serves from groups of
// a few slots that it maps and unmaps as they fill and empty: an mmap +
// munmap pair per connection one at a time, and every 5-6 connections under
// load (50 at once), on the loop thread. 32 covers the handshakes that
// overlap at that load (8 left 0.08 pairs per connection; 64: 0.03).
#define HS_SPARE 32
static socks_hs *hs_spare[HS_SPARE];
static int hs_nspare;

static socks_hs *new_hs(void) {
  if (!hs_nspare) return calloc(1, sizeof(socks_hs));
  socks_hs *hs = hs_spare[--hs_nspare];
  memset(hs, 0, offsetof(socks_hs, buf));  // buf's bytes count only up to len
  return hs;
}

// The handshake state goes (a lookup still running is left to finish alone).
static void free_hs(fconn *c) {
  if (c->hs && c->hs->lookup) ug_resolve_cancel(c->hs->lookup);
  if (c->hs && hs_nspare < HS_SPARE)
    hs_spare[hs_nspare++] = c->hs;
  else
    free(c->hs);
  c->hs = NULL;
}

static void route_unref(socks_route *r) {
  if (!r || --r->refs > 0) return;
  free(r->addr);
  free(r->rule);
  free(r->action);
  free(r->via);
  free(r->dns_name);
  free(r);
}

static void free_socks(fconn *c) {
  free_hs(c);
  free(c->user);
  free(c->cdst);
  route_unref(c->route);
}

// A connection ends before its relay: the client gets a RST (reset) or a FIN.
static void end_conn(JSContext *ctx, fconn *c, const char *reason, int err, bool reset) {
  dial_unlink(c);
  if (c->upstream >= 0) {
    ug_loop_unwatch(ctx, c->upstream);
    close(c->upstream);
    c->upstream = -1;
  }
  ug_loop_drop(ctx, c->client);  // close ends its registration
  if (reset)
    reset_fd(c->client);
  else
    close(c->client);
  c->client = -1;
  free_hs(c);
  c->reason = reason;
  c->err = err;
  c->stage = FINISHED;
  push_done(c);
}

static void end_dial(JSContext *ctx, fconn *c, const char *reason, int err) {
  end_conn(ctx, c, reason, err, true);
}

// Bytes a SOCKS handshake sends: a few, on a socket that has sent nothing
// else, so they fit its buffer at once; -1 (errno) otherwise.
static int send_small(int fd, const void *p, size_t n) {
  ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w == (ssize_t)n) return 0;
  if (w >= 0) errno = EAGAIN;
  return -1;
}

// A SOCKS dial failed: the reply says why, then the client gets a FIN (as
// the JS path closes after a failure reply).
static void end_socks_dial(JSContext *ctx, fconn *c, const char *reason, int err) {
  uint8_t rep[22];
  size_t n = socks5_encode_reply(socks5_reply_for(reason, err), NULL, rep);
  send_small(c->client, rep, n);
  end_conn(ctx, c, reason, err, false);
}

// End c wherever it is before its relay, as the JS path would for `reason`
// (handshake-timeout, dns-timeout, connect-timeout, closed, shutdown).
static void end_early(JSContext *ctx, fconn *c, const char *reason) {
  if (c->stage == HANDSHAKE)
    end_conn(ctx, c, reason, 0, true);
  else if (c->l->kind == KIND_SOCKS)
    end_socks_dial(ctx, c, reason, 0);
  else
    end_dial(ctx, c, reason, 0);
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void start_relay(JSContext *ctx, fconn *c) {
  dial_unlink(c);
  ug_loop_unwatch(ctx, c->upstream);
  // The hang-up watch, if it has not fired, stays registered (one-shot): no
  // epoll_ctl to end it; if it fires during the relay, the loop ignores it.
  ug_loop_drop(ctx, c->client);
  fwd_listener *l = c->l;
  uint8_t *rest = NULL;
  size_t nrest = 0;
  if (l->kind == KIND_SOCKS) {
    // The success reply names the outbound socket's address, as the JS path's does.
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    uint8_t rep[22];
    bool named = getsockname(c->upstream, (struct sockaddr *)&ss, &sl) == 0;
    size_t n = socks5_encode_reply(0, named ? (struct sockaddr *)&ss : NULL, rep);
    if (send_small(c->client, rep, n) < 0) {
      end_conn(ctx, c, "client-error", errno, true);
      return;
    }
    // Bytes the client sent after its request: the relay's first ones upstream.
    socks_hs *hs = c->hs;
    if (hs->len > 0 && (rest = malloc(hs->len))) {
      memcpy(rest, hs->buf, hs->len);
      nrest = hs->len;
    }
    free_hs(c);
  }
  set_nodelay(c->upstream);
  relay_init(&c->r, c->client, c->upstream, l->splice, l->idle_ms, on_relay_done);
  if (rest) relay_set_initial(&c->r.up, rest, nrest);
  c->client = c->upstream = -1;
  c->stage = RELAYING;
  relay_start(&c->r);
}

static socklen_t sa_len(const struct sockaddr_in6 *a) {
  return a->sin6_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

// addr (an IPv4 or IPv6 literal) and port as a socket address; false otherwise.
static bool to_sockaddr(const char *addr, int port, struct sockaddr_in6 *out) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)out;
  memset(out, 0, sizeof *out);
  if (port <= 0 || port > 65535) return false;
  if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    return true;
  }
  if (inet_pton(AF_INET6, addr, &out->sin6_addr) == 1) {
    out->sin6_family = AF_INET6;
    out->sin6_port = htons(port);
    return true;
  }
  return false;
}

// As isOwnAddress (src/io/outbound.ts): one of ugate's listeners, a wildcard
// one matching any local address.
static bool is_own(const fwd_listener *l, const struct sockaddr_in6 *a) {
  const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
  bool v4 = a->sin6_family == AF_INET;
  const uint8_t *bytes = v4 ? (const uint8_t *)&a4->sin_addr : a->sin6_addr.s6_addr;
  size_t len = v4 ? 4 : 16;
  uint16_t port = ntohs(v4 ? a4->sin_port : a->sin6_port);
  static const uint8_t zero[16], one6[16] = {[15] = 1};
  bool local = v4 ? bytes[0] == 127 || !memcmp(bytes, zero, 4)
                  : !memcmp(bytes, one6, 16) || !memcmp(bytes, zero, 16);
  for (int i = 0; i < l->nown; i++) {
    const own_addr *o = &l->own[i];
    if (o->port != port) continue;
    bool wildcard = !memcmp(o->addr, zero, o->family == AF_INET ? 4 : 16);
    if ((o->family == a->sin6_family && !memcmp(o->addr, bytes, len)) || (wildcard && local))
      return true;
  }
  return false;
}

// The next address of a SOCKS dial, skipping ugate's own listeners (reason
// loop); none left: the failure reply with the last reason (dial.ts's order).
static void dial_next(JSContext *ctx, fconn *c) {
  socks_hs *hs = c->hs;
  while (hs->next < hs->naddrs) {
    const struct sockaddr_in6 *a = &hs->addrs[hs->next++];
    if (!is_own(c->l, a)) {
      dial(ctx, c, (const struct sockaddr *)a, sa_len(a));
      return;
    }
    hs->why = "loop";
    hs->why_err = 0;
  }
  end_socks_dial(ctx, c, hs->why, hs->why_err);
}

// One address of a SOCKS dial failed (refused, timed out): try the next.
static void socks_dial_failed(JSContext *ctx, fconn *c, const char *reason, int err) {
  dial_unlink(c);
  if (c->upstream >= 0) {
    ug_loop_unwatch(ctx, c->upstream);
    close(c->upstream);
    c->upstream = -1;
  }
  c->hs->why = reason;
  c->hs->why_err = err;
  dial_next(ctx, c);
}

static void on_connected(JSContext *ctx, int fd, uint32_t events, void *arg) {
  (void)fd;
  fconn *c = arg;
  int err = 0;
  socklen_t len = sizeof err;
  // EPOLLOUT alone means connected: a failed connect also raises EPOLLERR,
  // so only then is SO_ERROR read (one syscall less per connection).
  if ((events & (EPOLLERR | EPOLLHUP)) &&
      getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err && c->l->kind == KIND_SOCKS)
    socks_dial_failed(ctx, c, "connect-error", err);
  else if (err)
    end_dial(ctx, c, "connect-error", err);
  else
    start_relay(ctx, c);
  flush(ctx);
}

// The client hung up while ugate dials or resolves: the attempt ends at once
// (client-eof, as the JS paths name an EOF before the relay; a RST:
// client-error), not at the dial's end or timeout. A FIN after bytes
// not yet relayed is a half-close: the dial goes on and the relay delivers
// them (the one-shot watch is over: the dial's end or timeout decides).
static void on_hangup(JSContext *ctx, int fd, uint32_t events, void *arg) {
  fconn *c = arg;
  int err = 0, queued = 0;
  socklen_t len = sizeof err;
  if ((events & (EPOLLERR | EPOLLHUP)) && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (!err && ((c->hs && c->hs->len > 0) || (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)))
    return;
  if (err)
    end_conn(ctx, c, "client-error", err, true);
  else
    end_early(ctx, c, "client-eof");
  flush(ctx);
}

// Once per connection, when its dial (or lookup) has to wait: a one-shot
// EPOLLRDHUP watch of the client. A SOCKS client's handshake registration
// is re-armed (one EPOLL_CTL_MOD); a forward's client gets its first (one
// ADD). A failure only loses the early notice (the dial's end still comes).
static void watch_hangup(JSContext *ctx, fconn *c) {
  if (c->hup_watched) return;
  c->hup_watched = true;
  int ev = EPOLLRDHUP | EPOLLONESHOT;
  if (c->hs && c->hs->watched)
    ug_loop_rearm_c(ctx, c->client, ev, on_hangup, c);
  else
    ug_loop_watch_c(ctx, c->client, ev, on_hangup, c);
}

// A dial or lookup mostly completes within a few ms (LAN, loopback): its
// client gets the hang-up watch (watch_hangup) only if it still waits
// HUP_WATCH_MS after `since` (the dial timerfd wakes for it:
// watch_late_hangups). Watched at once, every connection paid an epoll_ctl
// (a forward's ADD, a SOCKS client's MOD) and, the one-shot registration
// outliving the dial, a loop wake-up for nothing when the client closed
// during the relay. A SOCKS dial's next address keeps the first deadline.
static void watch_hangup_later(fconn *c, double since) {
  if (c->hup_watched || c->hup_ms > 0) return;
  c->hup_ms = since + HUP_WATCH_MS;
  if (fw.hup_next == 0 || c->hup_ms < fw.hup_next) fw.hup_next = c->hup_ms;
}

// Connect to `to` (a forward: its target; SOCKS: one of the addresses).
static void dial(JSContext *ctx, fconn *c, const struct sockaddr *to, socklen_t to_len) {
  fwd_listener *l = c->l;
  bool socks = l->kind == KIND_SOCKS;
  void (*fail)(JSContext *, fconn *, const char *, int) = socks ? socks_dial_failed : end_dial;
  c->stage = DIALING;
  int fd = socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(ctx, c, "connect-error", errno);
    return;
  }
  c->upstream = fd;
  int err = 0;
  if (l->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &l->mark, sizeof l->mark) < 0)
    err = errno;
  else if (connect(fd, to, to_len) == 0) {
    start_relay(ctx, c);
    return;
  } else if (errno != EINPROGRESS ||
             ug_loop_watch_c(ctx, fd, EPOLLOUT | EPOLLONESHOT, on_connected, c) < 0)
    err = errno;
  if (err) {
    fail(ctx, c, "connect-error", err);
    return;
  }
  double now = ug_now_ms();
  c->deadline_ms = (socks ? now : c->start_ms) + l->timeout_ms;
  dial_insert(c);
  watch_hangup_later(c, socks ? now : c->start_ms);
  arm_timer(ctx);
}

// The connections still dialing (or resolving) at their hup_ms get their hang-up watch; the
// earliest hup_ms still to come is the next one.
static void watch_late_hangups(JSContext *ctx, double now) {
  fw.hup_next = 0;
  for (fconn *c = fw.dial_head; c; c = c->tnext) {
    if (c->hup_ms <= 0) continue;
    if (c->hup_ms <= now) {
      c->hup_ms = 0;
      watch_hangup(ctx, c);
    } else if (fw.hup_next == 0 || c->hup_ms < fw.hup_next) {
      fw.hup_next = c->hup_ms;
    }
  }
}

// An event JS logs (denied, limit, paused), sent with the next batch.
static void add_event(JSContext *ctx, const char *kind, fwd_listener *l, const char *key,
                      const char *value, const char *key2, const char *value2) {
  if (JS_IsUndefined(fw.events)) fw.events = JS_NewArray(ctx);
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "kind", JS_NewString(ctx, kind));
  JS_SetPropertyStr(ctx, o, "listener", JS_NewString(ctx, l->name));
  JS_SetPropertyStr(ctx, o, key, JS_NewString(ctx, value));
  if (key2) JS_SetPropertyStr(ctx, o, key2, JS_NewString(ctx, value2));
  JS_SetPropertyUint32(ctx, fw.events, fw.nevents++, o);
}

static void format_src(const struct sockaddr_storage *ss, char *ip, char *src) {
  int port = 0;
  char *end;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      end = put_ipv4(ip, &a->sin6_addr.s6_addr[12]);
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, ip, INET6_ADDRSTRLEN);
      size_t n = strlen(ip);
      src[0] = '[';
      memcpy(src + 1, ip, n);
      char *p = src + 1 + n;
      *p++ = ']';
      *p++ = ':';
      *put_dec(p, (uint64_t)port) = '\0';
      return;
    }
  } else {
    const struct sockaddr_in *a = (const void *)ss;
    port = ntohs(a->sin_port);
    end = put_ipv4(ip, (const uint8_t *)&a->sin_addr);
  }
  *end = '\0';
  size_t n = (size_t)(end - ip);
  memcpy(src, ip, n);
  src[n] = ':';
  *put_dec(src + n + 1, (uint64_t)port) = '\0';
}

static bool allowed(const fwd_listener *l, const struct sockaddr_storage *ss) {
  const uint8_t *a;
  int family;
  if (ss->ss_family == AF_INET) {
    a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
    family = 4;
  } else {
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    bool mapped = IN6_IS_ADDR_V4MAPPED(a6);
    a = mapped ? &a6->s6_addr[12] : a6->s6_addr;
    family = mapped ? 4 : 6;
  }
  for (int i = 0; i < l->nallow; i++) {
    const cidr *c = &l->allow[i];
    if (c->family != family) continue;
    int full = c->len / 8, rest = c->len % 8;
    if (memcmp(a, c->net, full)) continue;
    if (rest && ((a[full] ^ c->net[full]) & (0xff << (8 - rest)))) continue;
    return true;
  }
  return false;
}

// ---- the native SOCKS5 handshake ---------------------------------------------
enum { ASK_FIRST = 1, ASK_REQUEST, ASK_ROUTE };

static void on_client(JSContext *ctx, int fd, uint32_t events, void *arg);

// JS's turn for c at the next flush: a route (ASK_ROUTE), or the whole
// connection with the bytes read so far (ASK_FIRST: not SOCKS5; ASK_REQUEST:
// a request the native path does not serve). The handshake timer stops (a
// connection JS takes gets the time left: leftMs). The client's one-shot
// watch has fired (or was never set): dropping it needs no EPOLL_CTL_DEL, and
// the registration left disabled is what watch_hangup re-arms (JS watching
// the fd it took turns the EEXIST of its ADD into a MOD).
static void ask(JSContext *ctx, fconn *c, int what) {
  ug_loop_drop(ctx, c->client);
  dial_unlink(c);
  c->ask = (uint8_t)what;
  c->ask_next = NULL;
  if (fw.ask_tail)
    fw.ask_tail->ask_next = c;
  else
    fw.ask_head = c;
  fw.ask_tail = c;
}

// A malformed greeting, RFC 1929 message or request: logged with the bad value.
static void invalid(JSContext *ctx, fconn *c, const socks5_error *e, bool reset) {
  add_event(ctx, "invalid", c->l, "src", c->src, "error", e->text);
  end_conn(ctx, c, "socks5-invalid", 0, reset);
}

static void consume(socks_hs *hs, size_t n) {
  memmove(hs->buf, hs->buf + n, hs->len - n);
  hs->len -= n;
}

// RFC 1929's bytes against the accounts (as JS compares the decoded strings:
// for valid UTF-8 the same thing).
static bool user_ok(const fwd_listener *l, const socks5_userpass *up) {
  for (size_t i = 0; i + 2 <= l->users_len;) {
    const uint8_t *u = l->users + i;
    const uint8_t *p = u + 1 + u[0];
    if (u[0] == up->ulen && p[0] == up->plen && !memcmp(u + 1, up->user, up->ulen) &&
        !memcmp(p + 1, up->pass, up->plen))
      return true;
    i += 2u + u[0] + p[0];
  }
  return false;
}

static bool kept_answer(JSContext *ctx, fconn *c);

// Use what the handshake has read; false while it needs more bytes.
static bool socks_step(JSContext *ctx, fconn *c) {
  socks_hs *hs = c->hs;
  for (;;) {
    size_t used = 0;
    socks5_error e;
    int r;
    if (hs->state == S_GREET) {
      if (hs->len > 0 && hs->buf[0] != 5) {
        ask(ctx, c, ASK_FIRST);  // SOCKS4, HTTP on `mixed`: JS speaks those
        return true;
      }
      uint8_t method = 0;
      r = socks5_parse_greeting(hs->buf, hs->len, c->l->users_len > 0, &used, &method, &e);
      if (r == SOCKS5_NEED) return false;
      if (r == SOCKS5_BAD) return invalid(ctx, c, &e, true), true;
      consume(hs, used);
      uint8_t choice[2] = {5, method};
      if (send_small(c->client, choice, 2) < 0)
        return end_conn(ctx, c, "client-error", errno, true), true;
      if (method == 0xff) return end_conn(ctx, c, "auth-required", 0, false), true;
      hs->state = method == 2 ? S_AUTH : S_REQUEST;
    } else if (hs->state == S_AUTH) {
      socks5_userpass up;
      r = socks5_parse_userpass(hs->buf, hs->len, &used, &up, &e);
      if (r == SOCKS5_NEED) return false;
      if (r == SOCKS5_BAD) return invalid(ctx, c, &e, true), true;
      bool ok = user_ok(c->l, &up);
      uint8_t status[2] = {1, ok ? 0 : 1};
      if (send_small(c->client, status, 2) < 0)
        return end_conn(ctx, c, "client-error", errno, true), true;
      if (!ok) return end_conn(ctx, c, "auth-failed", 0, false), true;
      if (!(c->user = malloc(up.ulen + 1u)))
        return end_conn(ctx, c, "internal-error", 0, true), true;
      memcpy(c->user, up.user, up.ulen);
      c->user[up.ulen] = 0;
      c->user_len = up.ulen;
      consume(hs, used);
      hs->state = S_REQUEST;
    } else {
      r = socks5_parse_request(hs->buf, hs->len, &used, &hs->req, &e);
      if (r == SOCKS5_NEED) return false;
      uint8_t rep[22];
      if (r == SOCKS5_BAD) {
        send_small(c->client, rep, socks5_encode_reply(e.reply, NULL, rep));
        return invalid(ctx, c, &e, false), true;
      }
      char dst[SOCKS5_DST_MAX];
      socks5_format_dst(&hs->req, dst);
      if (!(c->cdst = strdup(dst))) return end_conn(ctx, c, "internal-error", 0, true), true;
      if (hs->req.cmd == 3) {
        ask(ctx, c, ASK_REQUEST);  // UDP ASSOCIATE: JS reads the request again
        return true;
      }
      if (hs->req.cmd == 2) {  // BIND: refused, as the JS path refuses it
        send_small(c->client, rep, socks5_encode_reply(SOCKS5_REP_CMD_UNSUPPORTED, NULL, rep));
        return end_conn(ctx, c, "command-not-supported:2", 0, false), true;
      }
      consume(hs, used);  // what is left goes upstream first
      if (!kept_answer(ctx, c)) ask(ctx, c, ASK_ROUTE);
      return true;
    }
  }
}

// Read what the client sent and use it; watch the client while more is due.
static void socks_read(JSContext *ctx, fconn *c) {
  socks_hs *hs = c->hs;
  for (;;) {
    const char *why = NULL;
    int err = 0;
    ssize_t n = 0;
    if (hs->len == HS_LIMIT) {
      why = "too-large";
    } else if ((n = recv(c->client, hs->buf + hs->len, HS_LIMIT - hs->len, 0)) == 0) {
      why = "client-eof";
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno != EAGAIN) {
      why = "client-error";
      err = errno;
    }
    if (why) {
      end_conn(ctx, c, why, err, true);
      return;
    }
    if (n > 0) {
      size_t room = HS_LIMIT - hs->len;
      hs->len += (size_t)n;
      if (socks_step(ctx, c)) return;
      // A full read may have left more behind (or filled the buffer: too
      // large); a short one emptied the socket (the client waits for the
      // answer just sent): the watch reports what comes
      // next, without a read that would find nothing.
      if ((size_t)n == room) continue;
    }
    // One-shot: the watch ends when it fires (the client is read, then
    // watched again or handed on), with no EPOLL_CTL_DEL per connection.
    int events = EPOLLIN | EPOLLONESHOT;
    if ((hs->watched ? ug_loop_rearm_c : ug_loop_watch_c)(ctx, c->client, events, on_client, c) < 0)
      end_conn(ctx, c, "client-error", errno, true);
    else
      hs->watched = true;
    return;
  }
}

static void on_client(JSContext *ctx, int fd, uint32_t events, void *arg) {
  (void)fd;
  (void)events;
  socks_read(ctx, arg);
  flush(ctx);
}

static void socks_start(JSContext *ctx, fconn *c) {
  if (!(c->hs = new_hs())) {
    end_conn(ctx, c, "internal-error", 0, true);
    return;
  }
  c->stage = HANDSHAKE;
  c->deadline_ms = c->start_ms + c->l->handshake_ms;
  dial_insert(c);
  arm_timer(ctx);
  socks_read(ctx, c);  // the greeting is often there already
}

// c now belongs to JS (its fd, admission and access line): C forgets it.
// Also the end of forget().
static void forget_taken(fconn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    fw.live = c->next;
  if (c->next) c->next->prev = c->prev;
  fw.nlive--;
  free_socks(c);
  listener_unref(c->l);
  ug_loop_unref();
  free(c);
}

static char *dup_prop(JSContext *ctx, JSValueConst o, const char *key) {
  JSValue v = JS_GetPropertyStr(ctx, o, key);
  char *out = NULL;
  if (JS_IsString(v)) {
    const char *s = JS_ToCString(ctx, v);
    if (s) out = strdup(s);
    JS_FreeCString(ctx, s);
  }
  JS_FreeValue(ctx, v);
  return out;
}

static void on_resolved(JSContext *ctx, void *arg, int gai_err, int naddrs,
                        const char (*addrs)[UG_ADDR_TEXT]) {
  fconn *c = arg;
  socks_hs *hs = c->hs;
  hs->lookup = NULL;
  dial_unlink(c);
  for (int i = 0; !gai_err && i < naddrs; i++)
    if (to_sockaddr(addrs[i], hs->dial_port, &hs->addrs[hs->naddrs])) hs->naddrs++;
  if (hs->naddrs == 0)
    end_socks_dial(ctx, c, "dns-error", 0);
  else
    dial_next(ctx, c);
  flush(ctx);
}

// JS's answer for a CONNECT: {addr, port, rule, action, via?, dnsName?, keep?}
// (dial addr, an IP or a host name, port), {reply, rule?, action?, keep?}
// (refuse with that SOCKS reply, reason rejected); NULL when out of memory.
static socks_route *route_from_js(JSContext *ctx, JSValueConst d) {
  socks_route *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->refs = 1;
  r->reply = -1;
  r->hit = -1;
  r->rule = dup_prop(ctx, d, "rule");
  r->action = dup_prop(ctx, d, "action");
  r->via = dup_prop(ctx, d, "via");
  r->dns_name = dup_prop(ctx, d, "dnsName");
  r->addr = dup_prop(ctx, d, "addr");
  ug_opt_int(ctx, d, "reply", &r->reply);
  ug_opt_int(ctx, d, "port", &r->port);
  return r;
}

// Route c as r says: refuse, dial an address, or resolve a name and dial.
static void route_apply(JSContext *ctx, fconn *c, socks_route *r) {
  r->refs++;
  c->route = r;
  c->rule = r->rule;
  c->action = r->action;
  c->via = r->via;
  c->dns_name = r->dns_name;
  if (r->reply >= 0) {
    uint8_t rep[22];
    send_small(c->client, rep, socks5_encode_reply((uint8_t)r->reply, NULL, rep));
    end_conn(ctx, c, "rejected", 0, false);
    return;
  }
  socks_hs *hs = c->hs;
  hs->why = "connect-error";
  if (r->addr && to_sockaddr(r->addr, r->port, &hs->addrs[0])) {
    hs->naddrs = 1;
    dial_next(ctx, c);
    return;
  }
  // A host name: resolved on the DNS workers within the connect timeout
  // (dns-timeout), then its addresses are dialed in order, as dial.ts does.
  if (r->addr && *r->addr && strlen(r->addr) < 256 && r->port > 0 && r->port <= 65535)
    hs->lookup = ug_resolve(r->addr, on_resolved, c);
  if (!hs->lookup) {
    fprintf(stderr, "ugate: onSocksRequests: nothing to dial for connection %.0f\n", c->id);
    end_conn(ctx, c, "internal-error", 0, true);
    return;
  }
  hs->dial_port = (uint16_t)r->port;
  c->stage = RESOLVING;
  double now = ug_now_ms();
  c->deadline_ms = now + c->l->timeout_ms;
  dial_insert(c);
  watch_hangup_later(c, now);
  arm_timer(ctx);
}

// ---- kept routes: CONNECTs C answers without asking JS --------------------------
// JS marks an answer `keep` when it is a function of the request alone under
// the rule set it came from (a dial or a refusal that RouteCache keeps, not
// routed by a name ugate's DNS learnt): the listener, the host as the client
// sent it, the port, and the client's address when a rule matches on the
// source (socksKeep's bySource). A later CONNECT with the same request is
// answered here; JS hears of it only in the access line and the metrics of
// the finished batch, and its rule's hit count in socksKeptHits (read when
// the hits are). socksKeep empties the table at every new rule set (a new
// generation); socksKeptForget drops a host when ugate's DNS learns a name
// for that address. Bounded: KEPT_CHAIN per bucket, the oldest goes first.
typedef struct kept kept;
struct kept {
  kept *next;
  socks_route *route;
  uint16_t port;
  char *listener, *host, *src;  // in this allocation; src NULL unless by source
};
#define KEPT_BUCKETS 512
#define KEPT_CHAIN 8  // one bucket holds one host's ports, sources, listeners

static struct {
  bool on, by_source;
  double gen;  // rule sets JS handed over (socksKeep calls)
  kept *bucket[KEPT_BUCKETS];
  uint32_t n;
  struct kept_hit {
    char *label;
    uint32_t n;      // hits not yet read by JS
    double last_ms;  // the latest one's wall clock
  } * hits;
  int nhits, cap_hits;
  double asked, answered;  // CONNECTs whose route JS was asked for / C answered
} kr;

static kept **kept_bucket(const char *host) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (const char *p = host; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  return &kr.bucket[h % KEPT_BUCKETS];
}

static bool kept_is(const kept *k, const fconn *c) {
  const socks5_request *q = &c->hs->req;
  return k->port == q->port && !strcmp(k->host, q->host) && !strcmp(k->listener, c->l->name) &&
         (!k->src || !strcmp(k->src, c->ip));
}

static void kept_free(kept *k) {
  route_unref(k->route);
  free(k);
  kr.n--;
}

// The slot of label in kr.hits (added when new); -1 when out of memory.
static int hit_slot(const char *label) {
  for (int i = 0; i < kr.nhits; i++)
    if (!strcmp(kr.hits[i].label, label)) return i;
  if (kr.nhits == kr.cap_hits) {
    int cap = kr.cap_hits ? kr.cap_hits * 2 : 8;
    struct kept_hit *h = realloc(kr.hits, cap * sizeof *h);
    if (!h) return -1;
    kr.hits = h;
    kr.cap_hits = cap;
  }
  char *copy = strdup(label);
  if (!copy) return -1;
  kr.hits[kr.nhits] = (struct kept_hit){.label = copy};
  return kr.nhits++;
}

// Keep r as the answer for c's request.
static void kept_put(const fconn *c, socks_route *r) {
  if (!kr.on || !r->rule || (r->hit = hit_slot(r->rule)) < 0) return;
  const socks5_request *q = &c->hs->req;
  const char *src = kr.by_source ? c->ip : NULL;
  size_t lh = strlen(q->host) + 1, ll = strlen(c->l->name) + 1, ls = src ? strlen(src) + 1 : 0;
  kept *k = malloc(sizeof *k + lh + ll + ls);
  if (!k) return;
  k->host = memcpy((char *)(k + 1), q->host, lh);
  k->listener = memcpy(k->host + lh, c->l->name, ll);
  k->src = src ? memcpy(k->listener + ll, src, ls) : NULL;
  k->port = q->port;
  k->route = r;
  r->refs++;
  kept **b = kept_bucket(q->host);
  // The same request asked twice in one batch: the later answer stays. A
  // full chain loses its oldest (the last).
  int len = 0;
  for (kept **p = b; *p;) {
    kept *x = *p;
    if (kept_is(x, c) || ++len >= KEPT_CHAIN) {
      *p = x->next;
      kept_free(x);
    } else {
      p = &x->next;
    }
  }
  k->next = *b;
  *b = k;
  kr.n++;
}

// c's request was answered before and kept: answer it the same way (the
// handshake timer stops, as when JS is asked). False when it was not.
static bool kept_answer(JSContext *ctx, fconn *c) {
  if (!kr.on) return false;
  kept *k = *kept_bucket(c->hs->req.host);
  while (k && !kept_is(k, c)) k = k->next;
  if (!k) return false;
  struct kept_hit *h = &kr.hits[k->route->hit];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);  // the rule's last hit, as js_wall_clock
  h->n++;
  h->last_ms = ts.tv_sec * 1e3 + (double)(ts.tv_nsec / 1000000);
  kr.answered++;
  ug_loop_drop(ctx, c->client);  // as ask(): fired, left disabled
  dial_unlink(c);
  route_apply(ctx, c, k->route);
  return true;
}

// The hits since the last call, [label, n, lastMs, ...], and their counts reset.
static JSValue kept_hits(JSContext *ctx) {
  JSValue a = JS_NewArray(ctx);
  uint32_t k = 0;
  for (int i = 0; i < kr.nhits; i++) {
    struct kept_hit *h = &kr.hits[i];
    if (!h->n) continue;
    JS_SetPropertyUint32(ctx, a, k++, JS_NewString(ctx, h->label));
    JS_SetPropertyUint32(ctx, a, k++, JS_NewInt32(ctx, (int32_t)h->n));
    JS_SetPropertyUint32(ctx, a, k++, JS_NewFloat64(ctx, h->last_ms));
    h->n = 0;
  }
  return a;
}

static void kept_clear(void) {
  for (int i = 0; i < KEPT_BUCKETS; i++)
    for (kept *k = kr.bucket[i], *next; k; k = next) {
      next = k->next;
      kept_free(k);
    }
  memset(kr.bucket, 0, sizeof kr.bucket);
  for (int i = 0; i < kr.nhits; i++) free(kr.hits[i].label);
  kr.nhits = 0;
}

// socksKeep(bySource): a new rule set (start, reload). Every kept route goes
// and answers are kept again from here, keyed by the source too when
// bySource. Returns the hits not yet read (socksKeptHits), which were the
// old rule set's.
static JSValue js_socks_keep(UG_JS_PARAMS) {
  JSValue hits = kept_hits(ctx);
  kept_clear();
  kr.on = true;
  kr.by_source = JS_ToBool(ctx, argv[0]);
  kr.gen++;
  return hits;
}

static JSValue js_socks_kept_hits(UG_JS_PARAMS) {
  return kept_hits(ctx);
}

// socksKeptForget(host): ugate's DNS learnt a name for this address (its
// one spelling, ipKey): a CONNECT to it may route by that name from now on.
static JSValue js_socks_kept_forget(UG_JS_PARAMS) {
  const char *host = JS_ToCString(ctx, argv[0]);
  if (!host) return JS_EXCEPTION;
  for (kept **p = kept_bucket(host); *p;) {
    kept *k = *p;
    if (!strcmp(k->host, host)) {
      *p = k->next;
      kept_free(k);
    } else {
      p = &k->next;
    }
  }
  JS_FreeCString(ctx, host);
  return JS_UNDEFINED;
}

// JS's answer d for c: a route (kept when d says so), or undefined (JS took c).
static void answer(JSContext *ctx, fconn *c, JSValueConst d) {
  if (!JS_IsObject(d)) {
    forget_taken(c);
    return;
  }
  socks_route *r = route_from_js(ctx, d);
  if (!r) {
    end_conn(ctx, c, "internal-error", 0, true);
    return;
  }
  bool keep = false;
  ug_opt_bool(ctx, d, "keep", &keep);
  if (keep) kept_put(c, r);
  route_apply(ctx, c, r);
  route_unref(r);
}

static const char *const ASK_KIND[] = {"", "first", "request", "route"};

// One call into JS for every SOCKS connection waiting for it.
static void ask_js(JSContext *ctx) {
  fconn *head = fw.ask_head;
  if (!head) return;
  fw.ask_head = fw.ask_tail = NULL;
  JSValue items = JS_NewArray(ctx);
  double now = ug_now_ms();
  uint32_t n = 0;
  for (fconn *c = head; c; c = c->ask_next) {
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "kind", JS_NewString(ctx, ASK_KIND[c->ask]));
    JS_SetPropertyStr(ctx, o, "id", JS_NewFloat64(ctx, c->id));
    JS_SetPropertyStr(ctx, o, "listener", JS_NewString(ctx, c->l->name));
    JS_SetPropertyStr(ctx, o, "src", JS_NewString(ctx, c->src));
    JS_SetPropertyStr(ctx, o, "addr", JS_NewString(ctx, c->ip));
    JS_SetPropertyStr(ctx, o, "port", JS_NewInt32(ctx, c->cport));
    JS_SetPropertyStr(ctx, o, "family", JS_NewInt32(ctx, c->family));
    if (c->user) JS_SetPropertyStr(ctx, o, "user", JS_NewStringLen(ctx, c->user, c->user_len));
    // Handed over (first, request), JS owns the fd from this call on; a route
    // only when JS answers undefined. `data`: the bytes read and not used.
    JS_SetPropertyStr(ctx, o, "fd", JS_NewInt32(ctx, c->client));
    double left = c->deadline_ms - now;
    JS_SetPropertyStr(ctx, o, "leftMs", JS_NewFloat64(ctx, left < 1 ? 1 : (double)(int64_t)left));
    if (c->ask != ASK_ROUTE || c->hs->len > 0)
      JS_SetPropertyStr(ctx, o, "data", JS_NewArrayBufferCopy(ctx, c->hs->buf, c->hs->len));
    if (c->ask == ASK_ROUTE) {
      kr.asked++;
      JS_SetPropertyStr(ctx, o, "host", JS_NewString(ctx, c->hs->req.host));
      JS_SetPropertyStr(ctx, o, "dstPort", JS_NewInt32(ctx, c->hs->req.port));
      JS_SetPropertyStr(ctx, o, "dst", JS_NewString(ctx, c->cdst));
    }
    JS_SetPropertyUint32(ctx, items, n++, o);
  }
  JSValue res =
      JS_IsFunction(ctx, fw.socks_cb) ? ug_call_value(ctx, fw.socks_cb, 1, &items) : JS_UNDEFINED;
  uint32_t i = 0;
  for (fconn *c = head, *next; c; c = next, i++) {
    next = c->ask_next;
    if (c->ask != ASK_ROUTE) {
      forget_taken(c);
      continue;
    }
    if (!JS_IsArray(res)) {  // no callback, or it threw (reported)
      end_conn(ctx, c, "internal-error", 0, true);
      continue;
    }
    JSValue d = JS_GetPropertyUint32(ctx, res, i);
    if (JS_IsUndefined(d) || JS_IsNull(d)) {
      // JS took it: it asked for the fd it now owns
      forget_taken(c);
    } else {
      answer(ctx, c, d);
    }
    JS_FreeValue(ctx, d);
  }
  JS_FreeValue(ctx, res);
  JS_FreeValue(ctx, items);
}

static void on_accept(JSContext *ctx, int fd, uint32_t events, void *arg);

// Accept until the backlog is empty (bounded, so other sockets get their turn).
static void on_accept(JSContext *ctx, int lfd, uint32_t events, void *arg) {
  (void)events;
  fwd_listener *l = arg;
  for (int i = 0; i < 256; i++) {
    struct sockaddr_storage ss;
    int fd = ug_accept(lfd, &ss);
    if (fd < 0) {
      if (errno == EAGAIN) break;
      // Out of fds (or worse): retrying now would spin; listen again in a second.
      char spare[UG_ERRNO_NAME_MAX];
      add_event(ctx, "paused", l, "error", ug_errno_name(errno, spare), NULL, NULL);
      ug_loop_unwatch(ctx, lfd);
      l->resume_ms = ug_now_ms() + 1000;
      arm_timer(ctx);
      break;
    }
    fconn *c = calloc(1, sizeof *c);
    if (!c) {
      reset_fd(fd);
      continue;
    }
    format_src(&ss, c->ip, c->src);
    c->family = strchr(c->ip, ':') ? 6 : 4;
    c->cport = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    if (!allowed(l, &ss)) {
      add_event(ctx, "denied", l, "src", c->src, NULL, NULL);
      reset_fd(fd);
      free(c);
      continue;
    }
    double id = admit(c->ip);
    if (id < 0) {
      char limit[48];
      if (id == -1)
        snprintf(limit, sizeof limit, "maxConnections=%d", adm.max);
      else
        snprintf(limit, sizeof limit, "maxPerSource=%d", adm.per_source);
      add_event(ctx, "limit", l, "src", c->src, "limit", limit);
      reset_fd(fd);
      free(c);
      continue;
    }
    c->id = id;  // TCP_NODELAY: inherited from the listener (mod_net.c)
    c->l = l;
    l->refs++;
    c->client = fd;
    c->upstream = -1;
    c->start_ms = ug_now_ms();
    c->next = fw.live;
    if (fw.live) fw.live->prev = c;
    fw.live = c;
    fw.nlive++;
    ug_loop_ref();
    if (l->kind == KIND_SOCKS)
      socks_start(ctx, c);
    else
      dial(ctx, c, (struct sockaddr *)&l->target, l->target_len);
  }
  flush(ctx);
}

static void on_timer(JSContext *ctx, int fd, uint32_t events, void *arg) {
  (void)events;
  (void)arg;
  uint64_t n;
  ssize_t r = read(fd, &n, sizeof n);
  (void)r;
  fw.armed_ms = 0;
  ug_loop_unwatch(ctx, fd);  // arm_timer watches it again when something is pending
  double now = ug_now_ms();
  while (fw.dial_head && fw.dial_head->deadline_ms <= now) {
    fconn *c = fw.dial_head;
    if (c->stage == HANDSHAKE)
      end_early(ctx, c, "handshake-timeout");
    else if (c->stage == RESOLVING)
      end_early(ctx, c, "dns-timeout");
    else if (c->l->kind == KIND_SOCKS)
      socks_dial_failed(ctx, c, "connect-timeout", 0);  // each address has its own timeout
    else
      end_early(ctx, c, "connect-timeout");
  }
  if (fw.hup_next > 0 && fw.hup_next <= now) watch_late_hangups(ctx, now);
  for (fwd_listener *l = fw.listeners; l; l = l->next) {
    if (l->resume_ms <= 0 || l->resume_ms > now) continue;
    l->resume_ms = 0;
    if (l->fd >= 0) ug_loop_watch_c(ctx, l->fd, EPOLLIN, on_accept, l);
  }
  arm_timer(ctx);
  flush(ctx);
}

static void set_opt_str(JSContext *ctx, JSValueConst o, const char *key, const char *v) {
  if (v) JS_SetPropertyStr(ctx, o, key, JS_NewString(ctx, v));
}

// The access line's reason: 'client-error:ECONNRESET' (relayReason).
static void conn_reason(const fconn *c, char out[64]) {
  char spare[UG_ERRNO_NAME_MAX];
  const char *why = c->reason ? c->reason : c->r.reason;
  int err = c->reason ? c->err : c->r.err;
  size_t n = strnlen(why, 63);
  memcpy(out, why, n);
  if (err && n < 62) {  // "why:ERRNO", cut at 63 bytes as snprintf would
    const char *name = ug_errno_name(err, spare);
    size_t m = strnlen(name, 62 - n);
    out[n++] = ':';
    memcpy(out + n, name, m);
    n += m;
  }
  out[n] = '\0';
}

static uint64_t conn_ms(const fconn *c, double now) {
  return (uint64_t)(int64_t)(now - c->start_ms + 0.5);
}

static const char *conn_dst(const fconn *c) {
  return c->l->kind == KIND_FORWARD ? c->l->dst : c->cdst ? c->cdst : "-";
}

// One field of a connection's access line: text (s, n bytes; s NULL: the
// field is left out) or a number.
typedef struct {
  const char *key;
  bool text;
  const char *s;
  size_t n;
  uint64_t num;
} conn_field;

#define CONN_FIELDS 13
#define TEXT(k, v) \
  { .key = k, .text = true, .s = v, .n = (v) ? strlen(v) : 0 }
#define NUM(k, v) \
  { .key = k, .num = v }

// The access line's fields in the JS path's order: listener src dst up down
// ms reason splice, then a SOCKS connection's user dnsName rule action via.
// The one list both the C line (access_line) and the JS fallback
// (conn_fields) are made from; `reason` holds the reason's text.
static void conn_field_list(const fconn *c, double now, char reason[64],
                            conn_field f[CONN_FIELDS]) {
  conn_reason(c, reason);
  bool relayed = !c->reason;
  const conn_field all[CONN_FIELDS] = {
      TEXT("listener", c->l->name),
      TEXT("src", c->src),
      TEXT("dst", conn_dst(c)),
      NUM("up", relayed ? c->r.up.bytes : 0),
      NUM("down", relayed ? c->r.down.bytes : 0),
      NUM("ms", conn_ms(c, now)),
      {.key = "reason", .text = true, .s = reason, .n = strlen(reason)},
      NUM("splice", relayed && c->r.spliced),
      {.key = "user", .text = true, .s = c->user, .n = c->user_len},  // UTF-8: may hold a NUL
      TEXT("dnsName", c->dns_name),
      TEXT("rule", c->rule),
      TEXT("action", c->action),
      TEXT("via", c->via),
  };
  memcpy(f, all, sizeof all);
}

#undef TEXT
#undef NUM

// The access line's fields as an object, for JS to format (log.ts).
static JSValue conn_fields(JSContext *ctx, const fconn *c, double now) {
  char reason[64];
  conn_field f[CONN_FIELDS];
  conn_field_list(c, now, reason, f);
  JSValue o = JS_NewObject(ctx);
  for (int i = 0; i < CONN_FIELDS; i++) {
    if (f[i].text && !f[i].s) continue;
    JS_SetPropertyStr(
        ctx, o, f[i].key,
        f[i].text ? JS_NewStringLen(ctx, f[i].s, f[i].n) : JS_NewFloat64(ctx, (double)f[i].num));
  }
  return o;
}

// c is finished (its access line sent): its relay state and address go too.
static void forget(fconn *c) {
  if (!c->reason) relay_release(&c->r);
  release(c->ip);
  forget_taken(c);
}

// ---- the access line, formatted here for every native connection ----------------
// Byte for byte what src/core/log.ts formatLine writes for the same fields
// (formatValue's quoting and escapes), so that JS is told once per batch: the
// lines as one string, and the metrics as groups of alike connections. A
// field with a byte >= 0x80 (a non-ASCII user or name) goes to JS as fields
// instead: formatValue also quotes Unicode spaces, which only it tells apart.
static struct {
  char *p;
  size_t len, cap;
} acc;  // the batch's lines; kept between batches

static bool acc_put(const char *s, size_t n) {
  if (acc.len + n > acc.cap) {
    size_t cap = acc.cap ? acc.cap * 2 : 4096;
    while (cap < acc.len + n) cap *= 2;
    char *p = realloc(acc.p, cap);
    if (!p) return false;
    acc.p = p;
    acc.cap = cap;
  }
  memcpy(acc.p + acc.len, s, n);
  acc.len += n;
  return true;
}

// " key=value", the value bare when formatValue leaves it bare, else quoted.
static bool acc_field(const char *key, const char *v, size_t n) {
  bool bare = n > 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)v[i];
    if (c >= 0x80) return false;
    if (c <= 0x20 || c == '"' || c == '=' || c == '\\' || c == 0x7f) bare = false;
  }
  if (!(acc_put(" ", 1) && acc_put(key, strlen(key)) && acc_put("=", 1))) return false;
  if (bare) return acc_put(v, n);
  if (!acc_put("\"", 1)) return false;
  for (size_t i = 0; i < n; i++) {
    char esc[8];
    uint8_t c = (uint8_t)v[i];
    const char *e = c == '\\'   ? "\\\\"
                    : c == '"'  ? "\\\""
                    : c == '\n' ? "\\n"
                    : c == '\r' ? "\\r"
                    : c == '\t' ? "\\t"
                                : NULL;
    if (!e && (c < 0x20 || c == 0x7f)) snprintf(esc, sizeof esc, "\\u%04x", c), e = esc;
    if (!(e ? acc_put(e, strlen(e)) : acc_put(v + i, 1))) return false;
  }
  return acc_put("\"", 1);
}

static bool acc_num(const char *key, uint64_t v) {
  char num[24];
  return acc_field(key, num, (size_t)(put_dec(num, v) - num));
}

// c's access line appended to acc, stamped `stamp`; false (acc as it was) if
// JS formats it (conn_fields).
static bool access_line(const fconn *c, const char *stamp, double now) {
  size_t mark = acc.len;
  char reason[64];
  conn_field f[CONN_FIELDS];
  conn_field_list(c, now, reason, f);
  bool ok = acc_put(stamp, strlen(stamp)) && acc_put(" info conn", 10);
  for (int i = 0; ok && i < CONN_FIELDS; i++)
    ok = f[i].text ? !f[i].s || acc_field(f[i].key, f[i].s, f[i].n) : acc_num(f[i].key, f[i].num);
  if (!(ok && acc_put("\n", 1))) {
    acc.len = mark;
    return false;
  }
  return true;
}

// new Date(ms).toISOString() of now's wall clock (whole ms, as js_wall_clock).
static void iso_now(char out[32]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

// What a batch's alike connections add to /metrics (ClosedCounters.closedMany).
#define MAX_GROUPS 16
typedef struct {
  const fwd_listener *l;
  const char *action;  // "none" when not routed
  char reason[64];
  bool relayed, splice;
  uint32_t n;
  uint64_t up, down;
} conn_group;

static bool group_add(conn_group *g, int *ng, const fconn *c) {
  char reason[64];
  conn_reason(c, reason);
  bool relayed = !c->reason, splice = relayed && c->r.spliced;
  const char *action = c->action ? c->action : "none";
  conn_group *x = g;
  while (x < g + *ng && !(x->l == c->l && x->relayed == relayed && x->splice == splice &&
                          !strcmp(x->action, action) && !strcmp(x->reason, reason)))
    x++;
  if (x == g + *ng) {
    if (*ng == MAX_GROUPS) return false;
    *x = (conn_group){.l = c->l, .action = action, .relayed = relayed, .splice = splice};
    memcpy(x->reason, reason, sizeof reason);
    (*ng)++;
  }
  x->n++;
  if (relayed) x->up += c->r.up.bytes, x->down += c->r.down.bytes;
  return true;
}

// Loop thread: the SOCKS connections waiting for JS first, then one call to
// JS with this turn's events and, when `take_done`, every connection
// finished since the last batch: cb(lines, counts, conns, relayed, events).
// An empty list is one array kept for every batch (JS only reads them): most
// batches need only the lines and the counts. The finished connections go
// to JS from the batch job (complete), which every push_done has posted,
// and not from the flush after each loop event: that flush found the relay
// thread's latest ones too, so JS was called once per event instead of once
// per loop turn (JS calls from a JS call, forwardClose and
// forwardCancelDialing, take them at once, as JS expects them gone).
static void flush_batch(JSContext *ctx, bool take_done) {
  ask_js(ctx);
  fconn *done = NULL;
  if (take_done) {
    pthread_mutex_lock(&fw.lock);
    done = fw.done_head;
    fw.done_head = fw.done_tail = NULL;
    pthread_mutex_unlock(&fw.lock);
  }
  if (!done && JS_IsUndefined(fw.events)) return;
  if (JS_IsUndefined(fw.empty)) fw.empty = JS_NewArray(ctx);
  JSValue conns = JS_UNDEFINED, relayed = JS_UNDEFINED;
  double now = ug_now_ms();
  char stamp[32];
  iso_now(stamp);
  conn_group groups[MAX_GROUPS];
  int ng = 0;
  acc.len = 0;
  uint32_t i = 0;
  // The groups point at their listeners and actions: forget after they are sent.
  for (fconn *c = done; c; c = c->done_next) {
    size_t mark = acc.len;
    if (access_line(c, stamp, now) && group_add(groups, &ng, c)) continue;
    acc.len = mark;
    if (i == 0) conns = JS_NewArray(ctx), relayed = JS_NewArray(ctx);
    JS_SetPropertyUint32(ctx, conns, i, conn_fields(ctx, c, now));
    JS_SetPropertyUint32(ctx, relayed, i++, JS_NewBool(ctx, !c->reason));
  }
  uint32_t k = 0;
  JSValue counts = ng ? JS_NewArray(ctx) : JS_DupValue(ctx, fw.empty);
  for (conn_group *g = groups; g < groups + ng; g++) {
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewString(ctx, g->l->name));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewString(ctx, g->action));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewString(ctx, g->reason));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewInt32(ctx, (int32_t)g->n));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewInt32(ctx, g->relayed));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewInt32(ctx, g->splice));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewFloat64(ctx, (double)g->up));
    JS_SetPropertyUint32(ctx, counts, k++, JS_NewFloat64(ctx, (double)g->down));
  }
  JSValue lines = JS_NewStringLen(ctx, acc.p ? acc.p : "", acc.len);
  for (fconn *c = done; c;) {
    fconn *next = c->done_next;
    forget(c);
    c = next;
  }
  JSValue args[5] = {lines, counts, i ? conns : JS_DupValue(ctx, fw.empty),
                     i ? relayed : JS_DupValue(ctx, fw.empty),
                     JS_IsUndefined(fw.events) ? JS_DupValue(ctx, fw.empty) : fw.events};
  fw.events = JS_UNDEFINED;
  fw.nevents = 0;
  if (JS_IsFunction(ctx, fw.cb)) ug_call(ctx, fw.cb, 5, args);
  for (int a = 0; a < 5; a++) JS_FreeValue(ctx, args[a]);
}

static void complete(JSContext *ctx, ug_job *job) {
  (void)job;
  pthread_mutex_lock(&fw.lock);
  fw.job_posted = false;  // from here a new result posts again
  pthread_mutex_unlock(&fw.lock);
  flush_batch(ctx, true);
}

// "10.0.0.0/8", "::1/128", or a bare address (all its bits).
static int parse_cidr(const char *s, cidr *out) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t alen = slash ? (size_t)(slash - s) : strlen(s);
  if (alen >= sizeof buf) return -1;
  memcpy(buf, s, alen);
  buf[alen] = 0;
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, buf, out->net) == 1)
    out->family = 4;
  else if (inet_pton(AF_INET6, buf, out->net) == 1)
    out->family = 6;
  else
    return -1;
  int max = out->family == 4 ? 32 : 128;
  long len = max;
  if (slash) {
    char *end;
    len = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || *end || len < 0 || len > max) return -1;
  }
  out->len = (uint8_t)len;
  return 0;
}

static fwd_listener *find_listener(int fd) {
  for (fwd_listener *l = fw.listeners; l; l = l->next)
    if (l->fd == fd) return l;
  return NULL;
}

static void stop_listener(JSContext *ctx, fwd_listener *l) {
  fwd_listener **p = &fw.listeners;
  while (*p != l) p = &(*p)->next;
  *p = l->next;
  if (l->resume_ms <= 0) ug_loop_unwatch(ctx, l->fd);
  l->fd = -1;
  listener_unref(l);
}

// The accounts ["user", "pass", ...] as RFC 1929 records; NULL with a reason.
static const char *users_from_js(JSContext *ctx, JSValueConst arr, fwd_listener *l) {
  int64_t n = 0;
  if (JS_IsUndefined(arr)) return NULL;
  if (!JS_IsArray(arr) || JS_GetLength(ctx, arr, &n) < 0 || n % 2 || n > 200000)
    return "users must be an array of user, password pairs";
  if (n == 0) return NULL;
  if (!(l->users = malloc((size_t)n * 256))) return "out of memory";
  for (int64_t i = 0; i < n; i++) {
    JSValue v = JS_GetPropertyUint32(ctx, arr, (uint32_t)i);
    size_t len = 0;
    const char *str = JS_IsString(v) ? JS_ToCStringLen(ctx, &len, v) : NULL;
    JS_FreeValue(ctx, v);
    if (!str) return "users: not a string";
    if (len > 255) {
      JS_FreeCString(ctx, str);
      return "users: longer than 255 bytes (RFC 1929)";
    }
    l->users[l->users_len++] = (uint8_t)len;
    memcpy(l->users + l->users_len, str, len);
    l->users_len += len;
    JS_FreeCString(ctx, str);
  }
  return NULL;
}

// ugate's listeners [{addr, port}, ...] (ctx.own); NULL or a reason.
static const char *own_from_js(JSContext *ctx, JSValueConst arr, fwd_listener *l) {
  int64_t n = 0;
  if (JS_IsUndefined(arr)) return NULL;
  if (!JS_IsArray(arr) || JS_GetLength(ctx, arr, &n) < 0 || n > 100000)
    return "own must be an array of {addr, port}";
  if (n > 0 && !(l->own = calloc(n, sizeof *l->own))) return "out of memory";
  for (int64_t i = 0; i < n; i++) {
    JSValue v = JS_GetPropertyUint32(ctx, arr, (uint32_t)i);
    const char *addr = NULL;
    int port = 0;
    struct sockaddr_in6 sa;
    bool ok = JS_IsObject(v) && ug_opt_string(ctx, v, "addr", &addr) > 0 &&
              ug_opt_int(ctx, v, "port", &port) > 0 && addr && to_sockaddr(addr, port, &sa);
    if (addr) JS_FreeCString(ctx, addr);
    JS_FreeValue(ctx, v);
    if (!ok) return "own: not an {addr, port} with an IP address and a port";
    own_addr *o = &l->own[l->nown++];
    o->family = (uint8_t)sa.sin6_family;
    o->port = (uint16_t)port;
    if (sa.sin6_family == AF_INET)
      memcpy(o->addr, &((struct sockaddr_in *)&sa)->sin_addr, 4);
    else
      memcpy(o->addr, &sa.sin6_addr, 16);
  }
  return NULL;
}

// forwardServe(fd, {kind, name, type, dst, addr, port, allow, mark, timeoutMs,
// splice, idleMs, handshakeMs, users, own}): the listening socket fd is served here
// from now on (replacing the options of an earlier call: reload); the
// connections already live keep theirs. kind "forward": every connection to
// addr:port; kind "socks": the SOCKS5 handshake in C (users: the accounts,
// flat; own: ugate's listeners, never dialed), JS asked per request
// (onSocksRequests).
static JSValue js_forward_serve(UG_JS_PARAMS) {
  int fd, port = 0;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  if (fd < 0) return JS_ThrowRangeError(ctx, "forwardServe: bad fd %d", fd);
  if (!JS_IsObject(argv[1]))
    return JS_ThrowTypeError(ctx, "forwardServe: options must be an object");
  if (fw.timerfd < 0) {
    fw.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fw.timerfd < 0) return ug_throw_errno(ctx, "timerfd_create", errno);
  }
  fwd_listener *l = calloc(1, sizeof *l);
  if (!l) return JS_ThrowOutOfMemory(ctx);
  l->refs = 1;
  l->fd = fd;
  const char *name = NULL, *dst = NULL, *addr = NULL, *kind = NULL, *type = NULL;
  JSValue allow = JS_UNDEFINED, users = JS_UNDEFINED, own = JS_UNDEFINED;
  const char *bad = NULL;
  if (ug_opt_string(ctx, argv[1], "kind", &kind) < 0 ||
      ug_opt_string(ctx, argv[1], "type", &type) < 0 ||
      ug_opt_int(ctx, argv[1], "handshakeMs", &l->handshake_ms) < 0 ||
      ug_opt_string(ctx, argv[1], "name", &name) < 0 ||
      ug_opt_string(ctx, argv[1], "dst", &dst) < 0 ||
      ug_opt_string(ctx, argv[1], "addr", &addr) < 0 ||
      ug_opt_int(ctx, argv[1], "port", &port) < 0 ||
      ug_opt_int(ctx, argv[1], "mark", &l->mark) < 0 ||
      ug_opt_int(ctx, argv[1], "timeoutMs", &l->timeout_ms) < 0 ||
      ug_opt_int(ctx, argv[1], "idleMs", &l->idle_ms) < 0 ||
      ug_opt_bool(ctx, argv[1], "splice", &l->splice) < 0)
    goto fail;
  l->kind = kind && !strcmp(kind, "socks") ? KIND_SOCKS : KIND_FORWARD;
  if (kind && strcmp(kind, "socks") && strcmp(kind, "forward"))
    bad = "kind is not forward or socks";
  l->name = strdup(name ? name : "");
  l->dst = strdup(dst ? dst : "");
  l->type = strdup(type ? type : "forward");
  if (!l->name || !l->dst || !l->type) {
    JS_ThrowOutOfMemory(ctx);
    goto fail;
  }
  {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l->target;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->target;
    if (addr && port > 0 && port <= 65535 && inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
      a4->sin_family = AF_INET;
      a4->sin_port = htons(port);
      l->target_len = sizeof *a4;
    } else if (addr && port > 0 && port <= 65535 &&
               inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(port);
      l->target_len = sizeof *a6;
    } else if (l->kind == KIND_FORWARD) {
      bad = "addr/port is not a numeric IP address and port";
    }
  }
  if (!bad && l->kind == KIND_SOCKS) {
    users = JS_GetPropertyStr(ctx, argv[1], "users");
    bad = users_from_js(ctx, users, l);
    if (!bad) {
      own = JS_GetPropertyStr(ctx, argv[1], "own");
      bad = own_from_js(ctx, own, l);
    }
  }
  allow = JS_GetPropertyStr(ctx, argv[1], "allow");
  if (!bad) {
    int64_t n = 0;
    if (!JS_IsArray(allow) || JS_GetLength(ctx, allow, &n) < 0 || n > 100000)
      bad = "allow must be an array of CIDRs";
    else if (n > 0 && !(l->allow = calloc(n, sizeof *l->allow)))
      bad = "out of memory";
    for (int64_t i = 0; !bad && i < n; i++) {
      JSValue v = JS_GetPropertyUint32(ctx, allow, (uint32_t)i);
      const char *s = JS_ToCString(ctx, v);
      JS_FreeValue(ctx, v);
      if (!s) goto fail;
      int r = parse_cidr(s, &l->allow[l->nallow]);
      JS_FreeCString(ctx, s);
      if (r < 0)
        bad = "allow: not a CIDR";
      else
        l->nallow++;
    }
  }
  if (bad) {
    JS_ThrowRangeError(ctx, "forwardServe: %s", bad);
    goto fail;
  }
  fwd_listener *old = find_listener(fd);
  if (ug_loop_watch_c(ctx, fd, EPOLLIN, on_accept, l) < 0) {
    ug_throw_errno(ctx, "epoll_ctl", errno);
    goto fail;
  }
  if (old) {  // the watch moved to l already
    old->resume_ms = 0;
    stop_listener(ctx, old);
    ug_loop_watch_c(ctx, fd, EPOLLIN, on_accept, l);
  }
  l->next = fw.listeners;
  fw.listeners = l;
  JS_FreeCString(ctx, name);
  JS_FreeCString(ctx, dst);
  JS_FreeCString(ctx, addr);
  JS_FreeCString(ctx, kind);
  JS_FreeCString(ctx, type);
  JS_FreeValue(ctx, allow);
  JS_FreeValue(ctx, users);
  JS_FreeValue(ctx, own);
  return JS_UNDEFINED;
fail:
  if (name) JS_FreeCString(ctx, name);
  if (dst) JS_FreeCString(ctx, dst);
  if (addr) JS_FreeCString(ctx, addr);
  if (kind) JS_FreeCString(ctx, kind);
  if (type) JS_FreeCString(ctx, type);
  JS_FreeValue(ctx, allow);
  JS_FreeValue(ctx, users);
  JS_FreeValue(ctx, own);
  listener_unref(l);
  return JS_EXCEPTION;
}

// forwardStop(fd): stop serving fd (the listener closes or turns into a JS one).
static JSValue js_forward_stop(UG_JS_PARAMS) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  fwd_listener *l = find_listener(fd);
  if (l) stop_listener(ctx, l);
  return JS_NewBool(ctx, l != NULL);
}

static JSValue js_on_forward_events(UG_JS_PARAMS) {
  if (!JS_IsFunction(ctx, argv[0]))
    return JS_ThrowTypeError(ctx, "onForwardEvents: not a function");
  JS_FreeValue(ctx, fw.cb);
  fw.cb = JS_DupValue(ctx, argv[0]);
  return JS_UNDEFINED;
}

// onSocksRequests(cb): cb(items) is asked about SOCKS connections (ask_js).
static JSValue js_on_socks_requests(UG_JS_PARAMS) {
  if (!JS_IsFunction(ctx, argv[0]))
    return JS_ThrowTypeError(ctx, "onSocksRequests: not a function");
  JS_FreeValue(ctx, fw.socks_cb);
  fw.socks_cb = JS_DupValue(ctx, argv[0]);
  return JS_UNDEFINED;
}

// The live native connections, as `ugate ctl connections` lists them.
static JSValue js_forward_connections(UG_JS_PARAMS) {
  JSValue a = JS_NewArray(ctx);
  double now = ug_now_ms();
  uint32_t i = 0;
  for (fconn *c = fw.live; c; c = c->next) {
    if (c->stage == FINISHED) continue;
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "id", JS_NewFloat64(ctx, c->id));
    JS_SetPropertyStr(ctx, o, "listener", JS_NewString(ctx, c->l->name));
    JS_SetPropertyStr(ctx, o, "src", JS_NewString(ctx, c->src));
    JS_SetPropertyStr(ctx, o, "stage",
                      JS_NewString(ctx, c->stage == RELAYING ? "relay" : "handshake"));
    JS_SetPropertyStr(ctx, o, "ms", JS_NewFloat64(ctx, (double)conn_ms(c, now)));
    JS_SetPropertyStr(ctx, o, "type", JS_NewString(ctx, c->l->type));
    set_opt_str(ctx, o, "dst", c->l->kind == KIND_FORWARD ? c->l->dst : c->cdst);
    if (c->user) JS_SetPropertyStr(ctx, o, "user", JS_NewStringLen(ctx, c->user, c->user_len));
    set_opt_str(ctx, o, "dnsName", c->dns_name);
    set_opt_str(ctx, o, "rule", c->rule);
    set_opt_str(ctx, o, "action", c->action);
    set_opt_str(ctx, o, "via", c->via);
    // Its live bytes are relayBytes()'s, as for every relay.
    if (c->stage == RELAYING) JS_SetPropertyStr(ctx, o, "relay", JS_NewFloat64(ctx, c->r.id));
    JS_SetPropertyUint32(ctx, a, i++, o);
  }
  return a;
}

// forwardClose(id): end one native connection (reason "closed"); false when unknown.
static JSValue js_forward_close(UG_JS_PARAMS) {
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0])) return JS_EXCEPTION;
  for (fconn *c = fw.live; c; c = c->next) {
    if (c->id != id || c->stage == FINISHED) continue;
    if (c->stage != RELAYING) {
      end_early(ctx, c, "closed");
      flush_batch(ctx, true);
    } else {
      relay_abort(&c->r);  // its memory stays until its result reached this thread
    }
    return JS_TRUE;
  }
  return JS_FALSE;
}

// Shutdown: every native connection still dialing ends (reason "shutdown").
static JSValue js_forward_cancel_dialing(UG_JS_PARAMS) {
  while (fw.dial_head) end_early(ctx, fw.dial_head, "shutdown");
  flush_batch(ctx, true);
  return JS_UNDEFINED;
}

// {total, live, forwardLive, socks*}: connections admitted since start and
// now (all listeners), the live native forwards (relayStats counts their
// relays), and the native SOCKS5 routes: asked of JS, answered from kept
// ones, kept now, rule sets handed over.
static JSValue js_gate_stats(UG_JS_PARAMS) {
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "total", JS_NewFloat64(ctx, adm.total));
  JS_SetPropertyStr(ctx, o, "live", JS_NewInt32(ctx, adm.live));
  JS_SetPropertyStr(ctx, o, "forwardLive", JS_NewInt32(ctx, fw.nlive));
  JS_SetPropertyStr(ctx, o, "socksAsked", JS_NewFloat64(ctx, kr.asked));
  JS_SetPropertyStr(ctx, o, "socksKept", JS_NewFloat64(ctx, kr.answered));
  JS_SetPropertyStr(ctx, o, "socksKeptRoutes", JS_NewInt32(ctx, (int32_t)kr.n));
  JS_SetPropertyStr(ctx, o, "socksRuleSets", JS_NewFloat64(ctx, kr.gen));
  return o;
}

// At exit, after the relay thread was joined: free what is left, call nobody.
void ug_gate_shutdown(JSContext *ctx) {
  for (fconn *c = fw.live, *next; c; c = next) {
    next = c->next;
    if (c->client >= 0) close(c->client);
    if (c->upstream >= 0) close(c->upstream);
    free_socks(c);
    listener_unref(c->l);
    free(c);
  }
  fw.live = NULL;
  while (hs_nspare) free(hs_spare[--hs_nspare]);
  kept_clear();
  free(kr.hits);
  kr.hits = NULL;
  kr.cap_hits = 0;
  while (fw.listeners) {
    fwd_listener *l = fw.listeners;
    fw.listeners = l->next;
    listener_unref(l);
  }
  if (fw.timerfd >= 0) close(fw.timerfd);
  fw.timerfd = -1;
  JS_FreeValue(ctx, fw.cb);
  JS_FreeValue(ctx, fw.socks_cb);
  JS_FreeValue(ctx, fw.events);
  JS_FreeValue(ctx, fw.empty);
  fw.cb = fw.socks_cb = fw.events = fw.empty = JS_UNDEFINED;
  free(acc.p);
  acc.p = NULL;
  acc.len = acc.cap = 0;
  for (int i = 0; i < SRC_BUCKETS; i++)
    for (src_count *s = adm.bucket[i], *next; s; s = next) {
      next = s->next;
      free(s);
    }
}

static const JSCFunctionListEntry gate_funcs[] = {
    JS_CFUNC_DEF("admit", 1, js_admit),
    JS_CFUNC_DEF("release", 1, js_release),
    JS_CFUNC_DEF("setLimits", 2, js_set_limits),
    JS_CFUNC_DEF("gateStats", 0, js_gate_stats),
    JS_CFUNC_DEF("forwardServe", 2, js_forward_serve),
    JS_CFUNC_DEF("forwardStop", 1, js_forward_stop),
    JS_CFUNC_DEF("onForwardEvents", 1, js_on_forward_events),
    JS_CFUNC_DEF("onSocksRequests", 1, js_on_socks_requests),
    JS_CFUNC_DEF("socksKeep", 1, js_socks_keep),
    JS_CFUNC_DEF("socksKeptHits", 0, js_socks_kept_hits),
    JS_CFUNC_DEF("socksKeptForget", 1, js_socks_kept_forget),
    JS_CFUNC_DEF("forwardConnections", 0, js_forward_connections),
    JS_CFUNC_DEF("forwardClose", 1, js_forward_close),
    JS_CFUNC_DEF("forwardCancelDialing", 0, js_forward_cancel_dialing),
};

ug_exports ug_gate_exports(void) {
  if (!fw.job.complete) {  // once, before any JS runs
    fw.cb = fw.socks_cb = fw.events = fw.empty = JS_UNDEFINED;
    fw.job.complete = complete;
  }
  return (ug_exports){gate_funcs, sizeof gate_funcs / sizeof gate_funcs[0]};
}
