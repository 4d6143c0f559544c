// JS side of the HBONE tunnels (hbone.c): the listener's accepted sockets and
// the upstream's streams go to the engine thread with a TLS config handle;
// what happens there comes back in batches to the callback onHboneEvents set
// (CONNECT requests to route, client streams answered, streams and tunnels
// over). Payload never enters JS.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hbone.h"
#include "ugate.h"
// After ugate.h (quickjs.h): declares ug_tls_config_from_js.
#include "tls.h"

// ---- TLS as hbone's transport ------------------------------------------------------------
static void *t_new(void *cfg, int fd, bool server, const char *expect) {
  (void)server;  // the config says which side it is
  return tls_conn_new(cfg, fd, expect);
}
static void t_free(void *t) {
  tls_conn_free(t);
}
static int t_handshake(void *t) {
  return tls_handshake(t);
}
static ssize_t t_read(void *t, uint8_t *b, size_t n) {
  return tls_read(t, b, n);
}
static ssize_t t_write(void *t, const uint8_t *p, size_t n) {
  return tls_write(t, p, n);
}
static size_t t_pending(const void *t) {
  return tls_pending(t);
}
static const char *t_error(const void *t) {
  return tls_conn_error(t);
}
static const char *t_peer_id(const void *t) {
  return tls_peer_spiffe_id(t);
}
static const char *t_peer_node(const void *t) {
  return tls_peer_node_id(t);
}
static void t_ref(void *cfg) {
  tls_config_ref(cfg);
}
static void t_unref(void *cfg) {
  tls_config_unref(cfg);
}
static const hb_security tls_sec = {t_new,   t_free,    t_handshake, t_read, t_write, t_pending,
                                    t_error, t_peer_id, t_peer_node, t_ref,  t_unref};

// ---- reports → JS --------------------------------------------------------------------------
static struct {
  bool started;
  JSValue cb;
  pthread_mutex_t lock;  // guards the fields below
  hb_report *head, *tail;
  bool posted;
  ug_job job;
} m = {.lock = PTHREAD_MUTEX_INITIALIZER};  // cb: a zero JSValue (an int) until set

// Engine thread: queue the batch for the loop thread; one job per batch.
static void sink(hb_report *batch) {
  hb_report *last = batch;
  while (last->next) last = last->next;
  pthread_mutex_lock(&m.lock);
  if (m.tail)
    m.tail->next = batch;
  else
    m.head = batch;
  m.tail = last;
  bool post = !m.posted;
  m.posted = true;
  pthread_mutex_unlock(&m.lock);
  if (post) ug_loop_post(&m.job);
}

static void set_str(JSContext *ctx, JSValue o, const char *k, const char *v) {
  JS_SetPropertyStr(ctx, o, k, JS_NewString(ctx, v ? v : ""));
}
static void set_num(JSContext *ctx, JSValue o, const char *k, double v) {
  JS_SetPropertyStr(ctx, o, k, JS_NewFloat64(ctx, v));
}

static const char *kind_name(int kind) {
  switch (kind) {
    case HB_REQUEST:
      return "request";
    case HB_OPENED:
      return "opened";
    case HB_DONE:
      return "done";
    default:
      return "closed";
  }
}

static void complete(JSContext *ctx, ug_job *job) {
  (void)job;
  pthread_mutex_lock(&m.lock);
  hb_report *list = m.head;
  m.head = m.tail = NULL;
  m.posted = false;
  pthread_mutex_unlock(&m.lock);
  JSValue arr = JS_NewArray(ctx);
  uint32_t i = 0;
  char spare[UG_ERRNO_NAME_MAX];
  for (hb_report *r = list, *next; r; r = next) {
    next = r->next;
    JSValue o = JS_NewObject(ctx);
    set_str(ctx, o, "kind", kind_name(r->kind));
    set_num(ctx, o, "tunnel", (double)r->tunnel);
    set_num(ctx, o, "stream", r->stream);
    set_num(ctx, o, "tag", (double)r->tag);
    set_str(ctx, o, "peerAddr", r->peer_addr);
    if (r->kind == HB_REQUEST) {
      set_str(ctx, o, "authority", r->authority);
      set_str(ctx, o, "baggage", r->baggage);
      set_str(ctx, o, "forwarded", r->forwarded);
      set_str(ctx, o, "traceparent", r->traceparent);
      set_str(ctx, o, "peerId", r->peer_id);
      set_str(ctx, o, "peerNode", r->peer_node);
    } else {
      set_num(ctx, o, "status", r->status);
      set_str(ctx, o, "reason", r->reason);
      set_str(ctx, o, "error", r->err ? ug_errno_name(r->err, spare) : r->error ? r->error : "");
      set_num(ctx, o, "toTunnel", (double)r->up);
      set_num(ctx, o, "toSocket", (double)r->down);
    }
    JS_SetPropertyUint32(ctx, arr, i++, o);
    free(r);
  }
  if (JS_IsFunction(ctx, m.cb)) ug_call(ctx, m.cb, 1, &arr);
  JS_FreeValue(ctx, arr);
}

static void start(void) {
  if (m.started) return;
  m.started = true;
  m.job.complete = complete;
  hbone_init(relay_engine(), sink);
}

// ---- calls ----------------------------------------------------------------------------------
// The tls_config* behind a handle of tlsConfig(); NULL with an exception.
static tls_config *tls_of(JSContext *ctx, JSValueConst v, bool server) {
  tls_config *c = ug_tls_config_from_js(ctx, v);
  if (c && tls_config_is_server(c) != server)
    return JS_ThrowTypeError(ctx, "hbone: a %s TLS config is needed", server ? "server" : "client"),
           NULL;
  return c;
}

// hboneServe(fd, tls, peerAddr): serve an accepted socket; returns the tunnel id.
static JSValue js_hbone_serve(UG_JS_PARAMS) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  tls_config *cfg = tls_of(ctx, argv[1], true);
  if (!cfg) return JS_EXCEPTION;
  const char *peer = JS_ToCString(ctx, argv[2]);
  if (!peer) return JS_EXCEPTION;
  start();
  ug_loop_forget_fd(ctx, fd);  // the engine thread owns it now
  uint64_t id = hbone_serve(fd, &tls_sec, cfg, peer);
  JS_FreeCString(ctx, peer);
  return JS_NewFloat64(ctx, (double)id);
}

static int tunnel_stream(JSContext *ctx, JSValueConst *argv, uint64_t *tunnel, uint32_t *id) {
  double t;
  if (JS_ToFloat64(ctx, &t, argv[0]) || JS_ToUint32(ctx, id, argv[1])) return -1;
  *tunnel = (uint64_t)t;
  return 0;
}

// hboneAccept(tunnel, stream, fd, initial?): 200, then the stream is bridged to fd.
static JSValue js_hbone_accept(UG_JS_PARAMS) {
  uint64_t tunnel;
  uint32_t id;
  int fd;
  if (tunnel_stream(ctx, argv, &tunnel, &id) || JS_ToInt32(ctx, &fd, argv[2])) return JS_EXCEPTION;
  uint8_t *initial = NULL;
  size_t len = 0;
  if (!JS_IsUndefined(argv[3])) {
    const uint8_t *p;
    if (ug_get_bytes(ctx, argv[3], &p, &len)) return JS_EXCEPTION;
    if (len > 0) {
      initial = malloc(len);
      if (!initial) return JS_ThrowOutOfMemory(ctx);
      memcpy(initial, p, len);
    }
  }
  ug_loop_forget_fd(ctx, fd);
  hbone_accept(tunnel, id, fd, initial, len);
  return JS_UNDEFINED;
}

// hboneRefuse(tunnel, stream, status): answer the CONNECT with status (400, 401, 503...).
static JSValue js_hbone_refuse(UG_JS_PARAMS) {
  uint64_t tunnel;
  uint32_t id;
  int status;
  if (tunnel_stream(ctx, argv, &tunnel, &id) || JS_ToInt32(ctx, &status, argv[2]))
    return JS_EXCEPTION;
  if (status < 300 || status > 599)
    return JS_ThrowRangeError(ctx, "hboneRefuse: bad status %d", status);
  hbone_refuse(tunnel, id, status);
  return JS_UNDEFINED;
}

// hboneOpen(opts, tls): a CONNECT stream on a pooled connection, bridged to one
// end of a new socket pair. Returns [tag, fd]: fd is the other end, the
// caller's (connected once the `opened` event says 200).
static JSValue js_hbone_open(UG_JS_PARAMS) {
  static double tags;
  JSValueConst o = argv[0];
  if (!JS_IsObject(o)) return JS_ThrowTypeError(ctx, "hboneOpen: options must be an object");
  tls_config *cfg = tls_of(ctx, argv[1], false);
  if (!cfg) return JS_EXCEPTION;
  const char *s[7] = {0};  // key, addr, expect, authority, baggage, forwarded, traceparent
  static const char *keys[7] = {"key",     "addr",      "expect",     "authority",
                                "baggage", "forwarded", "traceparent"};
  int port = 0, mark = 0, ping = 0, ping_timeout = 0;
  JSValue ret = JS_EXCEPTION;
  for (int i = 0; i < 7; i++)
    if (ug_opt_string(ctx, o, keys[i], &s[i]) < 0) goto out;
  if (ug_opt_int(ctx, o, "port", &port) < 0 || ug_opt_int(ctx, o, "mark", &mark) < 0 ||
      ug_opt_int(ctx, o, "pingMs", &ping) < 0 ||
      ug_opt_int(ctx, o, "pingTimeoutMs", &ping_timeout) < 0)
    goto out;
  if (!s[0] || !s[1] || !s[3]) {
    JS_ThrowTypeError(ctx, "hboneOpen: key, addr and authority are required");
    goto out;
  }
  hb_open_args a = {.key = s[0],
                    .expect = s[2],
                    .authority = s[3],
                    .mark = mark,
                    .ping_ms = ping,
                    .ping_timeout_ms = ping_timeout};
  a.baggage = s[4] ? s[4] : "";
  a.forwarded = s[5] ? s[5] : "";
  a.traceparent = s[6] ? s[6] : "";
  struct sockaddr_in *in = (struct sockaddr_in *)&a.peer;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.peer;
  if (inet_pton(AF_INET, s[1], &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    a.peer_len = sizeof *in;
  } else if (inet_pton(AF_INET6, s[1], &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.peer_len = sizeof *in6;
  } else {
    JS_ThrowRangeError(ctx, "hboneOpen: addr %s is not an IP address", s[1]);
    goto out;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    ret = ug_throw_errno(ctx, "socketpair", errno);
    goto out;
  }
  start();
  a.fd = sv[1];
  a.tag = (uint64_t)++tags;
  hbone_open(&a, &tls_sec, cfg);
  ret = JS_NewArray(ctx);
  JS_SetPropertyUint32(ctx, ret, 0, JS_NewFloat64(ctx, tags));
  JS_SetPropertyUint32(ctx, ret, 1, JS_NewInt32(ctx, sv[0]));
out:
  for (int i = 0; i < 7; i++)
    if (s[i]) JS_FreeCString(ctx, s[i]);
  return ret;
}

static JSValue js_hbone_close_all(UG_JS_PARAMS) {
  (void)ctx;
  if (m.started) hbone_close_all();
  return JS_UNDEFINED;
}

static JSValue js_on_hbone_events(UG_JS_PARAMS) {
  if (!JS_IsFunction(ctx, argv[0])) return JS_ThrowTypeError(ctx, "onHboneEvents: not a function");
  JS_FreeValue(ctx, m.cb);
  m.cb = JS_DupValue(ctx, argv[0]);
  return JS_UNDEFINED;
}

// hboneStats(): the live mesh connections, as of the engine's last publication.
static JSValue js_hbone_stats(UG_JS_PARAMS) {
  enum { MAX = 256 };
  hb_conn_stats *st = malloc(sizeof *st * MAX);
  if (!st) return JS_ThrowOutOfMemory(ctx);
  int n = m.started ? hbone_stats(st, MAX) : 0;
  JSValue arr = JS_NewArray(ctx);
  for (int i = 0; i < n && i < MAX; i++) {
    JSValue o = JS_NewObject(ctx);
    set_num(ctx, o, "id", (double)st[i].id);
    set_str(ctx, o, "role", st[i].server ? "server" : "client");
    set_str(ctx, o, "peer", st[i].peer_addr);
    set_str(ctx, o, "peerId", st[i].peer_id);
    if (!st[i].server) set_str(ctx, o, "pool", st[i].key);
    set_str(ctx, o, "state", st[i].state);
    set_num(ctx, o, "streams", st[i].streams);
    set_num(ctx, o, "streamsTotal", (double)st[i].streams_total);
    set_num(ctx, o, "bytesOut", (double)st[i].bytes_up);
    set_num(ctx, o, "bytesIn", (double)st[i].bytes_down);
    set_num(ctx, o, "rttMs", st[i].rtt_ms);
    set_num(ctx, o, "ageMs", st[i].age_ms);
    JS_SetPropertyUint32(ctx, arr, (uint32_t)i, o);
  }
  free(st);
  return arr;
}

// At exit, after the engine stopped: drop the callback and undelivered reports.
void ug_hbone_shutdown(JSContext *ctx) {
  JS_FreeValue(ctx, m.cb);
  m.cb = JS_UNDEFINED;
  for (hb_report *r = m.head, *next; r; r = next) next = r->next, free(r);
  m.head = m.tail = NULL;
}

static const JSCFunctionListEntry hbone_funcs[] = {
    JS_CFUNC_DEF("hboneServe", 3, js_hbone_serve),
    JS_CFUNC_DEF("hboneAccept", 4, js_hbone_accept),
    JS_CFUNC_DEF("hboneRefuse", 3, js_hbone_refuse),
    JS_CFUNC_DEF("hboneOpen", 2, js_hbone_open),
    JS_CFUNC_DEF("hboneCloseAll", 0, js_hbone_close_all),
    JS_CFUNC_DEF("onHboneEvents", 1, js_on_hbone_events),
    JS_CFUNC_DEF("hboneStats", 0, js_hbone_stats),
};

ug_exports ug_hbone_exports(void) {
  return (ug_exports){hbone_funcs, sizeof hbone_funcs / sizeof hbone_funcs[0]};
}
