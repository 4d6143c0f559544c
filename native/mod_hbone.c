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

#include "h2.h"
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
  int r = tls_handshake(t);
  return r ? r : tls_batch(t);  // bulk from here: records batched both ways
}
static int t_flush(void *t) {
  return tls_flush(t);
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
static void *t_new_reverse(void *cfg, int fd, bool server, const char *expect) {
  (void)server;
  return tls_conn_new_reverse(cfg, fd, expect);
}
static const char *t_alpn(const void *t) {
  return tls_alpn(t);
}
static void t_ref(void *cfg) {
  tls_config_ref(cfg);
}
static void t_unref(void *cfg) {
  tls_config_unref(cfg);
}
static const hb_security tls_sec = {t_new,     t_free,        t_handshake, t_read,      t_write,
                                    t_pending, t_error,       t_peer_id,   t_peer_node, t_ref,
                                    t_unref,   t_new_reverse, t_alpn,      t_flush};

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
    case HB_REVERSE:
      return "reverse";
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
    } else if (r->kind == HB_REVERSE) {
      set_str(ctx, o, "peerId", r->peer_id);
      set_str(ctx, o, "peerNode", r->peer_node);
    } else {
      set_num(ctx, o, "status", r->status);
      set_str(ctx, o, "reason", r->reason);
      set_str(ctx, o, "error", r->err ? ug_errno_name(r->err, spare) : "");
      set_num(ctx, o, "toTunnel", (double)r->up);
      set_num(ctx, o, "toSocket", (double)r->down);
      if (r->kind == HB_CLOSED) set_str(ctx, o, "detail", r->detail);
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

// A connection's keep-alive from options {pingIntervalMs?, pingTimeoutMs?}
// into p (absent: left at 0, hbone's defaults); fn names the call in the error.
static int ping_opts(JSContext *ctx, JSValueConst o, const char *fn, hb_ping *p) {
  if (ug_opt_int(ctx, o, "pingIntervalMs", &p->every_ms) < 0 ||
      ug_opt_int(ctx, o, "pingTimeoutMs", &p->timeout_ms) < 0)
    return -1;
  if (p->every_ms >= 0 && p->timeout_ms >= 0) return 0;
  JS_ThrowRangeError(ctx, "%s: pingIntervalMs %d / pingTimeoutMs %d must not be negative", fn,
                     p->every_ms, p->timeout_ms);
  return -1;
}

// hboneServe(fd, tls, peerAddr, reverseOk?, {pingIntervalMs?, pingTimeoutMs?}): serve an
// accepted socket; returns the tunnel id.
static JSValue js_hbone_serve(UG_JS_PARAMS) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  bool reverse_ok = argc > 3 && JS_ToBool(ctx, argv[3]) > 0;
  hb_ping ping = {0};
  if (argc > 4 && ping_opts(ctx, argv[4], "hboneServe", &ping) < 0) return JS_EXCEPTION;
  tls_config *cfg = tls_of(ctx, argv[1], true);
  if (!cfg) return JS_EXCEPTION;
  const char *peer = JS_ToCString(ctx, argv[2]);
  if (!peer) return JS_EXCEPTION;
  start();
  ug_loop_forget_fd(ctx, fd);  // the engine thread owns it now
  uint64_t id = hbone_serve(fd, &tls_sec, cfg, peer, reverse_ok, ping);
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

// An IP literal and port as a socket address; -1 with a RangeError thrown.
static int ip_port(JSContext *ctx, const char *addr, int port, struct sockaddr_storage *ss,
                   socklen_t *len) {
  struct sockaddr_in *in = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    *len = sizeof *in;
  } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof *in6;
  } else {
    JS_ThrowRangeError(ctx, "hboneOpen: addr %s is not an IP address", addr);
    return -1;
  }
  return 0;
}

// hboneOpen(opts, tls): a CONNECT stream on a pooled connection, bridged to one
// end of a new socket pair. Returns [tag, fd]: fd is the other end, the
// caller's (connected once the `opened` event says 200). opts.node: the peer's
// node id; opts.via {key, addr, port, expect?, authority}: double HBONE through
// that relay (hbone.h), no addr of the peer.
static JSValue js_hbone_open(UG_JS_PARAMS) {
  static double tags;
  JSValueConst o = argv[0];
  if (!JS_IsObject(o)) return JS_ThrowTypeError(ctx, "hboneOpen: options must be an object");
  tls_config *cfg = tls_of(ctx, argv[1], false);
  if (!cfg) return JS_EXCEPTION;
  // key, addr, expect, authority, baggage, forwarded, traceparent, node; via's key, addr, expect,
  // authority
  const char *s[12] = {0};
  static const char *keys[12] = {"key",     "addr",      "expect",      "authority",
                                 "baggage", "forwarded", "traceparent", "node",
                                 "key",     "addr",      "expect",      "authority"};
  int port = 0, mark = 0, via_port = 0;
  double tunnel = 0;
  hb_ping ping = {0};
  JSValue ret = JS_EXCEPTION;
  JSValue via = JS_GetPropertyStr(ctx, o, "via");
  bool has_via = JS_IsObject(via);
  for (int i = 0; i < (has_via ? 12 : 8); i++)
    if (ug_opt_string(ctx, i < 8 ? o : via, keys[i], &s[i]) < 0) goto out;
  if (ug_opt_int(ctx, o, "port", &port) < 0 || ug_opt_int(ctx, o, "mark", &mark) < 0 ||
      ug_opt_number(ctx, o, "tunnel", &tunnel) < 0 || ping_opts(ctx, o, "hboneOpen", &ping) < 0 ||
      (has_via && ug_opt_int(ctx, via, "port", &via_port) < 0))
    goto out;
  // On a reverse tunnel (tunnel: its id) or through a relay no address is dialed.
  if (!s[0] || (!s[1] && tunnel <= 0 && !has_via) || !s[3] ||
      (has_via && (!s[8] || !s[9] || !s[11]))) {
    JS_ThrowTypeError(ctx,
                      "hboneOpen: key, addr (or tunnel, or via {key, addr, authority}) and "
                      "authority are required");
    goto out;
  }
  hb_open_args a = {.key = s[0], .expect = s[2], .authority = s[3], .mark = mark, .ping = ping};
  a.baggage = s[4] ? s[4] : "";
  a.forwarded = s[5] ? s[5] : "";
  a.traceparent = s[6] ? s[6] : "";
  a.expect_node = s[7];
  a.tunnel = tunnel > 0 ? (uint64_t)tunnel : 0;
  if (a.tunnel || has_via) {
    a.peer.ss_family = AF_INET;  // not dialed
    a.peer_len = sizeof(struct sockaddr_in);
  } else if (ip_port(ctx, s[1], port, &a.peer, &a.peer_len) < 0) {
    goto out;
  }
  if (has_via) {
    if (ip_port(ctx, s[9], via_port, &a.via_peer, &a.via_peer_len) < 0) goto out;
    a.via_key = s[8];
    a.via_expect = s[10];
    a.via_authority = s[11];
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
  for (int i = 0; i < 12; i++)
    if (s[i]) JS_FreeCString(ctx, s[i]);
  JS_FreeValue(ctx, via);
  return ret;
}

// hboneServeStream(tunnel, stream, tls, peerAddr): answer a CONNECT with 200 and
// serve what comes on the stream as a new HBONE connection (the inner one of double
// HBONE: TLS and HTTP/2 inside the stream); returns that connection's tunnel id.
// Its client PINGs it (a served connection does not).
static JSValue js_hbone_serve_stream(UG_JS_PARAMS) {
  uint64_t tunnel;
  uint32_t id;
  if (tunnel_stream(ctx, argv, &tunnel, &id)) return JS_EXCEPTION;
  tls_config *cfg = tls_of(ctx, argv[2], true);
  if (!cfg) return JS_EXCEPTION;
  const char *peer = JS_ToCString(ctx, argv[3]);
  if (!peer) return JS_EXCEPTION;
  int sv[2];
  JSValue ret;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    ret = ug_throw_errno(ctx, "socketpair", errno);
  } else {
    start();
    hbone_accept(tunnel, id, sv[1], NULL, 0);  // jobs run in order: bridged, then served
    ret = JS_NewFloat64(ctx, (double)hbone_serve(sv[0], &tls_sec, cfg, peer, false, (hb_ping){0}));
  }
  JS_FreeCString(ctx, peer);
  return ret;
}

// hboneReverse(fd, tls, peerAddr, {expect?, pingIntervalMs?, pingTimeoutMs?}): the dialing
// side of a reverse tunnel on a connected socket; returns the tunnel id.
static JSValue js_hbone_reverse(UG_JS_PARAMS) {
  int fd;
  hb_ping ping = {0};
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  tls_config *cfg = tls_of(ctx, argv[1], false);
  if (!cfg) return JS_EXCEPTION;
  if (!JS_IsObject(argv[3]))
    return JS_ThrowTypeError(ctx, "hboneReverse: options must be an object");
  const char *peer = JS_ToCString(ctx, argv[2]), *expect = NULL;
  JSValue ret = JS_EXCEPTION;
  if (!peer || ug_opt_string(ctx, argv[3], "expect", &expect) < 0 ||
      ping_opts(ctx, argv[3], "hboneReverse", &ping) < 0)
    goto out;
  start();
  ug_loop_forget_fd(ctx, fd);  // the engine thread owns it now
  ret = JS_NewFloat64(ctx, (double)hbone_reverse(fd, &tls_sec, cfg, peer, expect, ping));
out:
  if (peer) JS_FreeCString(ctx, peer);
  if (expect) JS_FreeCString(ctx, expect);
  return ret;
}

// hboneClose(tunnel, why): 'refused' (a reverse tunnel this gate does not allow: GOAWAY
// REFUSED_STREAM), 'replaced' (a newer one of the same gate), or 'stopped' (GOAWAY: no new
// streams, closed once the open ones are over).
static JSValue js_hbone_close(UG_JS_PARAMS) {
  double t;
  if (JS_ToFloat64(ctx, &t, argv[0])) return JS_EXCEPTION;
  const char *why = JS_ToCString(ctx, argv[1]);
  if (!why) return JS_EXCEPTION;
  static const char *const reasons[] = {"reverse-refused", "replaced", "stopped"};
  int k = !strcmp(why, "refused")    ? 0
          : !strcmp(why, "replaced") ? 1
          : !strcmp(why, "stopped")  ? 2
                                     : -1;
  JSValue ret = JS_UNDEFINED;
  if (k < 0)
    ret = JS_ThrowRangeError(ctx, "hboneClose: %s is not refused, replaced or stopped", why);
  else if (m.started)
    hbone_close((uint64_t)t, k == 0 ? H2_REFUSED_STREAM : H2_NO_ERROR, k == 2, reasons[k]);
  JS_FreeCString(ctx, why);
  return ret;
}

// hboneReverseAccept(tunnel): register a reverse tunnel a listener's `reverse` event offered.
static JSValue js_hbone_reverse_accept(UG_JS_PARAMS) {
  double t;
  if (JS_ToFloat64(ctx, &t, argv[0])) return JS_EXCEPTION;
  if (m.started) hbone_reverse_accept((uint64_t)t);
  return JS_UNDEFINED;
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
    if (st[i].reverse) JS_SetPropertyStr(ctx, o, "reverse", JS_TRUE);
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
    JS_CFUNC_DEF("hboneServeStream", 4, js_hbone_serve_stream),
    JS_CFUNC_DEF("hboneCloseAll", 0, js_hbone_close_all),
    JS_CFUNC_DEF("hboneReverse", 4, js_hbone_reverse),
    JS_CFUNC_DEF("hboneClose", 2, js_hbone_close),
    JS_CFUNC_DEF("hboneReverseAccept", 1, js_hbone_reverse_accept),
    JS_CFUNC_DEF("onHboneEvents", 1, js_on_hbone_events),
    JS_CFUNC_DEF("hboneStats", 0, js_hbone_stats),
};

ug_exports ug_hbone_exports(void) {
  return (ug_exports){hbone_funcs, sizeof hbone_funcs / sizeof hbone_funcs[0]};
}
