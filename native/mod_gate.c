// The gate: admission of every connection (maxConnections, maxPerSource, the
// connection ids) for all listeners, and the native forward: a `forward`
// listener whose connections run no JS at all. C accepts until EAGAIN,
// checks the allow list and the limits, dials the fixed target (SO_MARK,
// connect timeout) and hands the pair to relay.c. JS hears of a connection
// only once it is over, in batches (one call for every connection finished
// since the last), for the access line and the stats.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
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

typedef struct fwd_listener fwd_listener;
struct fwd_listener {
  fwd_listener *next;  // the serving ones
  int fd;              // -1 once stopped
  int refs;            // 1 while serving, + 1 per live connection
  char *name, *dst;    // for the access line and the connection list
  struct sockaddr_storage target;
  socklen_t target_len;
  int mark, timeout_ms, idle_ms;
  bool splice;
  cidr *allow;
  int nallow;
  double resume_ms;  // > 0: paused (out of fds) until then
};

enum { DIALING, RELAYING, FINISHED };

typedef struct fconn fconn;
struct fconn {
  relay r;
  fconn *prev, *next;    // live: from accept until JS was told
  fconn *tprev, *tnext;  // dialing, by deadline
  fconn *done_next;      // finished, waiting for the next batch to JS
  fwd_listener *l;
  double id, start_ms, deadline_ms;
  int client, upstream;  // owned here while DIALING
  int stage;
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
  double armed_ms;  // the timerfd's deadline, 0 = disarmed
  JSValue cb;       // onForwardEvents: every batch
  // Finished connections, pushed by both threads; one job posted per batch.
  pthread_mutex_t lock;
  fconn *done_head, *done_tail;
  ug_job job;
  bool job_posted;
  // Refusals and pauses of this loop turn, told with the next batch.
  JSValue events;
  uint32_t nevents;
} fw = {.timerfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void flush(JSContext *ctx);

static void listener_unref(fwd_listener *l) {
  if (--l->refs > 0) return;
  free(l->name);
  free(l->dst);
  free(l->allow);
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

// The timerfd wakes for the earliest dial deadline or paused listener. It is
// re-armed only when that moves earlier (no syscall per connection) and
// watched only while armed (an idle gateway has nothing pending here).
static void arm_timer(JSContext *ctx) {
  double next = fw.dial_head ? fw.dial_head->deadline_ms : 0;
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

// A dialing connection ends without a relay: the client gets a RST.
static void end_dial(JSContext *ctx, fconn *c, const char *reason, int err) {
  dial_unlink(c);
  if (c->upstream >= 0) {
    ug_loop_unwatch(ctx, c->upstream);
    close(c->upstream);
    c->upstream = -1;
  }
  reset_fd(c->client);
  c->client = -1;
  c->reason = reason;
  c->err = err;
  c->stage = FINISHED;
  push_done(c);
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void start_relay(JSContext *ctx, fconn *c) {
  dial_unlink(c);
  ug_loop_unwatch(ctx, c->upstream);
  set_nodelay(c->upstream);
  fwd_listener *l = c->l;
  relay_init(&c->r, c->client, c->upstream, l->splice, l->idle_ms, on_relay_done);
  c->client = c->upstream = -1;
  c->stage = RELAYING;
  relay_start(&c->r);
}

static void on_connected(JSContext *ctx, int fd, uint32_t events, void *arg) {
  (void)fd;
  (void)events;
  fconn *c = arg;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err)
    end_dial(ctx, c, "connect-error", err);
  else
    start_relay(ctx, c);
  flush(ctx);
}

static void dial(JSContext *ctx, fconn *c) {
  fwd_listener *l = c->l;
  int fd = socket(l->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    end_dial(ctx, c, "connect-error", errno);
    return;
  }
  c->upstream = fd;
  int err = 0;
  if (l->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &l->mark, sizeof l->mark) < 0)
    err = errno;
  else if (connect(fd, (struct sockaddr *)&l->target, l->target_len) == 0) {
    start_relay(ctx, c);
    return;
  } else if (errno != EINPROGRESS || ug_loop_watch_c(ctx, fd, EPOLLOUT, on_connected, c) < 0)
    err = errno;
  if (err) {
    end_dial(ctx, c, "connect-error", err);
    return;
  }
  c->deadline_ms = c->start_ms + l->timeout_ms;
  dial_insert(c);
  arm_timer(ctx);
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
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, INET6_ADDRSTRLEN);
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, ip, INET6_ADDRSTRLEN);
      snprintf(src, INET6_ADDRSTRLEN + 8, "[%s]:%d", ip, port);
      return;
    }
  } else {
    const struct sockaddr_in *a = (const void *)ss;
    port = ntohs(a->sin_port);
    inet_ntop(AF_INET, &a->sin_addr, ip, INET6_ADDRSTRLEN);
  }
  snprintf(src, INET6_ADDRSTRLEN + 8, "%s:%d", ip, port);
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
    dial(ctx, c);
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
  while (fw.dial_head && fw.dial_head->deadline_ms <= now)
    end_dial(ctx, fw.dial_head, "connect-timeout", 0);
  for (fwd_listener *l = fw.listeners; l; l = l->next) {
    if (l->resume_ms <= 0 || l->resume_ms > now) continue;
    l->resume_ms = 0;
    if (l->fd >= 0) ug_loop_watch_c(ctx, l->fd, EPOLLIN, on_accept, l);
  }
  arm_timer(ctx);
  flush(ctx);
}

// The access line's fields, in its order: listener src dst up down ms reason splice.
static JSValue conn_fields(JSContext *ctx, fconn *c, double now) {
  char reason[64], spare[UG_ERRNO_NAME_MAX];
  const char *why = c->reason ? c->reason : c->r.reason;
  int err = c->reason ? c->err : c->r.err;
  if (err)
    snprintf(reason, sizeof reason, "%s:%s", why, ug_errno_name(err, spare));
  else
    snprintf(reason, sizeof reason, "%s", why);
  bool relayed = !c->reason;
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "listener", JS_NewString(ctx, c->l->name));
  JS_SetPropertyStr(ctx, o, "src", JS_NewString(ctx, c->src));
  JS_SetPropertyStr(ctx, o, "dst", JS_NewString(ctx, c->l->dst));
  JS_SetPropertyStr(ctx, o, "up", JS_NewFloat64(ctx, relayed ? (double)c->r.up.bytes : 0));
  JS_SetPropertyStr(ctx, o, "down", JS_NewFloat64(ctx, relayed ? (double)c->r.down.bytes : 0));
  JS_SetPropertyStr(ctx, o, "ms", JS_NewFloat64(ctx, (double)(int64_t)(now - c->start_ms + 0.5)));
  JS_SetPropertyStr(ctx, o, "reason", JS_NewString(ctx, reason));
  JS_SetPropertyStr(ctx, o, "splice", JS_NewInt32(ctx, relayed && c->r.spliced));
  return o;
}

static void forget(fconn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    fw.live = c->next;
  if (c->next) c->next->prev = c->prev;
  fw.nlive--;
  if (!c->reason) relay_release(&c->r);
  release(c->ip);
  listener_unref(c->l);
  ug_loop_unref();
  free(c);
}

// Loop thread: one call to JS with every connection finished since the last
// batch and this turn's events: cb({conns, events}).
static void flush(JSContext *ctx) {
  pthread_mutex_lock(&fw.lock);
  fconn *c = fw.done_head;
  fw.done_head = fw.done_tail = NULL;
  pthread_mutex_unlock(&fw.lock);
  if (!c && JS_IsUndefined(fw.events)) return;
  JSValue conns = JS_NewArray(ctx);
  double now = ug_now_ms();
  for (uint32_t i = 0; c; i++) {
    fconn *next = c->done_next;
    JS_SetPropertyUint32(ctx, conns, i, conn_fields(ctx, c, now));
    forget(c);
    c = next;
  }
  JSValue batch = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, batch, "conns", conns);
  JS_SetPropertyStr(ctx, batch, "events", JS_IsUndefined(fw.events) ? JS_NewArray(ctx) : fw.events);
  fw.events = JS_UNDEFINED;
  fw.nevents = 0;
  if (JS_IsFunction(ctx, fw.cb)) ug_call(ctx, fw.cb, 1, &batch);
  JS_FreeValue(ctx, batch);
}

static void complete(JSContext *ctx, ug_job *job) {
  (void)job;
  pthread_mutex_lock(&fw.lock);
  fw.job_posted = false;  // from here a new result posts again
  pthread_mutex_unlock(&fw.lock);
  flush(ctx);
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

// forwardServe(fd, {name, dst, addr, port, allow, mark, timeoutMs, splice, idleMs}):
// the listening socket fd is served here from now on (replacing the options of
// an earlier call: reload); the connections already live keep their target.
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
  const char *name = NULL, *dst = NULL, *addr = NULL;
  JSValue allow = JS_UNDEFINED;
  const char *bad = NULL;
  if (ug_opt_string(ctx, argv[1], "name", &name) < 0 ||
      ug_opt_string(ctx, argv[1], "dst", &dst) < 0 ||
      ug_opt_string(ctx, argv[1], "addr", &addr) < 0 ||
      ug_opt_int(ctx, argv[1], "port", &port) < 0 ||
      ug_opt_int(ctx, argv[1], "mark", &l->mark) < 0 ||
      ug_opt_int(ctx, argv[1], "timeoutMs", &l->timeout_ms) < 0 ||
      ug_opt_int(ctx, argv[1], "idleMs", &l->idle_ms) < 0 ||
      ug_opt_bool(ctx, argv[1], "splice", &l->splice) < 0)
    goto fail;
  l->name = strdup(name ? name : "");
  l->dst = strdup(dst ? dst : "");
  if (!l->name || !l->dst) {
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
    } else {
      bad = "addr/port is not a numeric IP address and port";
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
  JS_FreeValue(ctx, allow);
  return JS_UNDEFINED;
fail:
  if (name) JS_FreeCString(ctx, name);
  if (dst) JS_FreeCString(ctx, dst);
  if (addr) JS_FreeCString(ctx, addr);
  JS_FreeValue(ctx, allow);
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
                      JS_NewString(ctx, c->stage == DIALING ? "handshake" : "relay"));
    JS_SetPropertyStr(ctx, o, "ms", JS_NewFloat64(ctx, (double)(int64_t)(now - c->start_ms + 0.5)));
    JS_SetPropertyStr(ctx, o, "dst", JS_NewString(ctx, c->l->dst));
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
    if (c->stage == DIALING) {
      end_dial(ctx, c, "closed", 0);
      flush(ctx);
    } else {
      relay_abort(&c->r);  // its memory stays until its result reached this thread
    }
    return JS_TRUE;
  }
  return JS_FALSE;
}

// Shutdown: every native connection still dialing ends (reason "shutdown").
static JSValue js_forward_cancel_dialing(UG_JS_PARAMS) {
  while (fw.dial_head) end_dial(ctx, fw.dial_head, "shutdown", 0);
  flush(ctx);
  return JS_UNDEFINED;
}

// {total, live, forwardLive}: connections admitted since start and now (all
// listeners), and the live native forwards (relayStats counts their relays).
static JSValue js_gate_stats(UG_JS_PARAMS) {
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "total", JS_NewFloat64(ctx, adm.total));
  JS_SetPropertyStr(ctx, o, "live", JS_NewInt32(ctx, adm.live));
  JS_SetPropertyStr(ctx, o, "forwardLive", JS_NewInt32(ctx, fw.nlive));
  return o;
}

// At exit, after the relay thread was joined: free what is left, call nobody.
void ug_gate_shutdown(JSContext *ctx) {
  for (fconn *c = fw.live, *next; c; c = next) {
    next = c->next;
    if (c->client >= 0) close(c->client);
    if (c->upstream >= 0) close(c->upstream);
    listener_unref(c->l);
    free(c);
  }
  fw.live = NULL;
  while (fw.listeners) {
    fwd_listener *l = fw.listeners;
    fw.listeners = l->next;
    listener_unref(l);
  }
  if (fw.timerfd >= 0) close(fw.timerfd);
  fw.timerfd = -1;
  JS_FreeValue(ctx, fw.cb);
  JS_FreeValue(ctx, fw.events);
  fw.cb = fw.events = JS_UNDEFINED;
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
    JS_CFUNC_DEF("forwardConnections", 0, js_forward_connections),
    JS_CFUNC_DEF("forwardClose", 1, js_forward_close),
    JS_CFUNC_DEF("forwardCancelDialing", 0, js_forward_cancel_dialing),
};

ug_exports ug_gate_exports(void) {
  if (!fw.job.complete) {  // once, before any JS runs
    fw.cb = fw.events = JS_UNDEFINED;
    fw.job.complete = complete;
  }
  return (ug_exports){gate_funcs, sizeof gate_funcs / sizeof gate_funcs[0]};
}
