// JS side of the SOCKS5 UDP ASSOCIATE relays (socks_udp.c): socksUdpOpen
// makes an association whose callback hears of each new destination (to
// route it with socksUdpRoute) and of its end; socksUdpClose ends it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "socks_udp.h"
#include "ugate.h"

typedef struct {
  ug_job job;
  socks_udp_event ev;
} event_job;

// Association id → JS callback; an entry goes with the association's END.
static ug_cb_table callbacks;

static void complete(JSContext *ctx, ug_job *job) {
  event_job *j = UG_CONTAINER_OF(job, event_job, job);
  socks_udp_event *ev = &j->ev;
  bool end = ev->kind == SU_EV_END;  // the last event of this association
  JSValue cb = end ? ug_cb_take(&callbacks, ev->assoc) : ug_cb_get(ctx, &callbacks, ev->assoc);
  if (!JS_IsUndefined(cb)) {
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "type", JS_NewString(ctx, end ? "end" : "dest"));
    if (end) {
      JS_SetPropertyStr(ctx, o, "reason", JS_NewString(ctx, ev->reason));
      JS_SetPropertyStr(ctx, o, "packetsUp", JS_NewFloat64(ctx, (double)ev->pk_up));
      JS_SetPropertyStr(ctx, o, "bytesUp", JS_NewFloat64(ctx, (double)ev->by_up));
      JS_SetPropertyStr(ctx, o, "packetsDown", JS_NewFloat64(ctx, (double)ev->pk_down));
      JS_SetPropertyStr(ctx, o, "bytesDown", JS_NewFloat64(ctx, (double)ev->by_down));
      JS_SetPropertyStr(ctx, o, "ms", JS_NewFloat64(ctx, (double)(int64_t)ev->ms));
    } else {
      JS_SetPropertyStr(ctx, o, "dest", JS_NewInt64(ctx, ev->dest));
      JS_SetPropertyStr(ctx, o, "host", JS_NewString(ctx, ev->host));
      JS_SetPropertyStr(ctx, o, "port", JS_NewInt32(ctx, ev->port));
    }
    ug_call(ctx, cb, 1, &o);
    JS_FreeValue(ctx, o);
    JS_FreeValue(ctx, cb);
  }
  free(j);
}

static socks_udp_event *alloc_event(void) {
  event_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->job.complete = complete;
  return &j->ev;
}

static void emit_event(socks_udp_event *ev) {
  ug_loop_post(&UG_CONTAINER_OF(ev, event_job, ev)->job);
}

static socklen_t parse_addr(const char *s, int port, struct sockaddr_storage *ss) {
  udp_key k = {.port = (uint16_t)port};
  if (inet_pton(AF_INET, s, k.addr) == 1)
    k.family = 4;
  else if (inet_pton(AF_INET6, s, k.addr) == 1)
    k.family = 6;
  else
    return 0;
  return udp_key_to_sockaddr(&k, ss);
}

// Address text and port (a JS string and number) → sockaddr; 0 with an exception.
static socklen_t js_addr(JSContext *ctx, JSValueConst addr, JSValueConst port_v,
                         struct sockaddr_storage *ss, const char *what) {
  int port;
  if (JS_ToInt32(ctx, &port, port_v)) return 0;
  if (port < 0 || port > 65535) {
    JS_ThrowRangeError(ctx, "%s: bad port %d", what, port);
    return 0;
  }
  const char *s = JS_ToCString(ctx, addr);
  if (!s) return 0;
  socklen_t len = parse_addr(s, port, ss);
  if (len == 0) JS_ThrowTypeError(ctx, "%s: %s is not a numeric IP address", what, s);
  JS_FreeCString(ctx, s);
  return len;
}

// socksUdpOpen(bindAddr, clientAddr, clientPort, {idleMs, mark}, cb) → {id, addr, port, family}
static JSValue js_open(UG_JS_PARAMS) {
  struct sockaddr_storage bind_ss, client_ss, bound;
  int idle_ms = 60000;
  double mark = 0;
  if (!JS_IsFunction(ctx, argv[4]))
    return JS_ThrowTypeError(ctx, "socksUdpOpen: callback is not a function");
  if (!js_addr(ctx, argv[0], JS_NewInt32(ctx, 0), &bind_ss, "socksUdpOpen bind") ||
      !js_addr(ctx, argv[1], argv[2], &client_ss, "socksUdpOpen client"))
    return JS_EXCEPTION;
  if (ug_opt_int(ctx, argv[3], "idleMs", &idle_ms) < 0 ||
      ug_opt_number(ctx, argv[3], "mark", &mark) < 0)
    return JS_EXCEPTION;
  if (idle_ms < 1 || !(mark >= 0) || mark > 4294967295.0)
    return JS_ThrowRangeError(ctx, "socksUdpOpen: idleMs must be >= 1 and mark 0-4294967295");
  int r = ug_udp_start();
  if (r < 0) return ug_throw_errno(ctx, "udp thread", -r);
  static const socks_udp_hooks hooks = {alloc_event, emit_event};
  r = socks_udp_init(&hooks);
  if (r < 0) return ug_throw_errno(ctx, "udp thread", -r);
  udp_key client;
  udp_key_from_sockaddr(&client, &client_ss);
  uint64_t id;
  socklen_t bind_len =
      bind_ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  r = socks_udp_open(&bind_ss, bind_len, &client, idle_ms, (uint32_t)mark, &id, &bound);
  if (r < 0) return ug_throw_errno(ctx, "socks udp bind", -r);
  if (ug_cb_add(ctx, &callbacks, id, argv[4]) < 0) {
    socks_udp_close(id);  // its END finds no callback
    return JS_ThrowOutOfMemory(ctx);
  }
  udp_key k;
  udp_key_from_sockaddr(&k, &bound);
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(k.family == 4 ? AF_INET : AF_INET6, k.addr, buf, sizeof buf);
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "id", JS_NewFloat64(ctx, (double)id));
  JS_SetPropertyStr(ctx, o, "addr", JS_NewString(ctx, buf));
  JS_SetPropertyStr(ctx, o, "port", JS_NewInt32(ctx, k.port));
  JS_SetPropertyStr(ctx, o, "family", JS_NewInt32(ctx, k.family));
  return o;
}

// socksUdpRoute(assoc, dest, {action, addr?, port?}) → '' or an errno name (ENOENT: gone).
static JSValue js_route(UG_JS_PARAMS) {
  double assoc, dest;
  if (JS_ToFloat64(ctx, &assoc, argv[0]) || JS_ToFloat64(ctx, &dest, argv[1])) return JS_EXCEPTION;
  if (!JS_IsObject(argv[2]))
    return JS_ThrowTypeError(ctx, "socksUdpRoute: route must be an object");
  const char *action = NULL;
  if (ug_opt_string(ctx, argv[2], "action", &action) < 0) return JS_EXCEPTION;
  int mode = 0;
  if (action && strcmp(action, "direct") == 0)
    mode = SU_DIRECT;
  else if (action && strcmp(action, "forward") == 0)
    mode = SU_FORWARD;
  else if (action && strcmp(action, "reject") == 0)
    mode = SU_REJECT;
  else if (action && strcmp(action, "upstream") == 0)
    mode = SU_UPSTREAM;
  if (action) JS_FreeCString(ctx, action);
  if (mode == 0)
    return JS_ThrowTypeError(ctx,
                             "socksUdpRoute: action must be direct, forward, reject or upstream");
  struct sockaddr_storage ss = {0};
  socklen_t len = 0;
  if (mode != SU_REJECT) {
    JSValue a = JS_GetPropertyStr(ctx, argv[2], "addr"),
            p = JS_GetPropertyStr(ctx, argv[2], "port");
    len = js_addr(ctx, a, p, &ss, "socksUdpRoute");
    JS_FreeValue(ctx, a);
    JS_FreeValue(ctx, p);
    if (len == 0) return JS_EXCEPTION;
  }
  int err = socks_udp_route((uint64_t)assoc, (uint32_t)dest, mode, &ss, len);
  char spare[UG_ERRNO_NAME_MAX];
  return JS_NewString(ctx, err == 0 ? "" : ug_errno_name(-err, spare));
}

// socksUdpClose(assoc) → false when it had ended already; its END event follows.
static JSValue js_close(UG_JS_PARAMS) {
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0])) return JS_EXCEPTION;
  return JS_NewBool(ctx, socks_udp_close((uint64_t)id) == 0);
}

static JSValue js_stats(UG_JS_PARAMS) {
  socks_udp_counters c;
  socks_udp_counters_get(&c);
  JSValue o = JS_NewObject(ctx), d = JS_NewObject(ctx);
#define SET(obj, name, v) JS_SetPropertyStr(ctx, obj, name, JS_NewFloat64(ctx, (double)(v)))
  SET(o, "associationsLive", c.assocs_live);
  SET(o, "associationsTotal", c.assocs_total);
  SET(o, "packetsUp", c.pk_up);
  SET(o, "bytesUp", c.by_up);
  SET(o, "packetsDown", c.pk_down);
  SET(o, "bytesDown", c.by_down);
  SET(o, "destsEvicted", c.dests_evicted);
  SET(o, "gsoRefused", c.gso_refused);
  SET(d, "foreign", c.drop_foreign);
  SET(d, "fragment", c.drop_fragment);
  SET(d, "malformed", c.drop_malformed);
  SET(d, "rejected", c.drop_rejected);
  SET(d, "queueFull", c.drop_queue_full);
  SET(d, "sendFailed", c.drop_send_failed);
#undef SET
  JS_SetPropertyStr(ctx, o, "drops", d);
  return o;
}

// At exit, after the UDP thread stopped: drop the callbacks.
void ug_socks_udp_shutdown(JSContext *ctx) {
  ug_cb_clear(ctx, &callbacks);
}

static const JSCFunctionListEntry funcs[] = {
    JS_CFUNC_DEF("socksUdpOpen", 5, js_open),
    JS_CFUNC_DEF("socksUdpRoute", 3, js_route),
    JS_CFUNC_DEF("socksUdpClose", 1, js_close),
    JS_CFUNC_DEF("socksUdpStats", 0, js_stats),
};

ug_exports ug_socks_udp_exports(void) {
  return (ug_exports){funcs, sizeof funcs / sizeof funcs[0]};
}
