// JS side of the UDP flow engine (udp.c): udpListen opens a TPROXY listener
// whose callback hears of each new flow (with a copy of its first datagram),
// of its next datagrams while it waits for its route (up to sniffDatagrams)
// and of each finished one; udpRoute answers a new flow. Events travel from
// the UDP thread as jobs posted to the loop.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udp.h"
#include "ugate.h"

typedef struct {
  ug_job job;
  udp_event ev;
} event_job;

// Listener id → JS callback.
static ug_cb_table callbacks;

// A flow's route and traffic (UdpFlowCounters in src/io/native.d.ts).
static void set_counters(JSContext *ctx, JSValue o, const char *action, uint64_t pk_up,
                         uint64_t by_up, uint64_t pk_down, uint64_t by_down, double ms) {
  JS_SetPropertyStr(ctx, o, "action", JS_NewString(ctx, action));
  JS_SetPropertyStr(ctx, o, "packetsUp", JS_NewFloat64(ctx, (double)pk_up));
  JS_SetPropertyStr(ctx, o, "bytesUp", JS_NewFloat64(ctx, (double)by_up));
  JS_SetPropertyStr(ctx, o, "packetsDown", JS_NewFloat64(ctx, (double)pk_down));
  JS_SetPropertyStr(ctx, o, "bytesDown", JS_NewFloat64(ctx, (double)by_down));
  JS_SetPropertyStr(ctx, o, "ms", JS_NewFloat64(ctx, (double)(int64_t)ms));
}

static JSValue key_addr(JSContext *ctx, const udp_key *k) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(k->family == 4 ? AF_INET : AF_INET6, k->addr, buf, sizeof buf);
  return JS_NewString(ctx, buf);
}

static void set_endpoint(JSContext *ctx, JSValue o, const char *addr, const char *port,
                         const udp_key *k) {
  JS_SetPropertyStr(ctx, o, addr, key_addr(ctx, k));
  JS_SetPropertyStr(ctx, o, port, JS_NewInt32(ctx, k->port));
}

// Loop thread: hand the event to the listener's callback.
static void complete(JSContext *ctx, ug_job *job) {
  event_job *j = UG_CONTAINER_OF(job, event_job, job);
  udp_event *ev = &j->ev;
  // A reference of its own: the callback may close its own listener.
  JSValue cb = ev->kind != 0 ? ug_cb_get(ctx, &callbacks, (uint64_t)ev->listener) : JS_UNDEFINED;
  if (!JS_IsUndefined(cb) && ev->kind == UDP_EV_BUSY) {
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "type", JS_NewString(ctx, "busy"));
    JS_SetPropertyStr(ctx, o, "dropped", JS_NewFloat64(ctx, (double)ev->dropped));
    ug_call(ctx, cb, 1, &o);
    JS_FreeValue(ctx, cb);
    JS_FreeValue(ctx, o);
  } else if (!JS_IsUndefined(cb)) {
    JSValue o = JS_NewObject(ctx);
    const char *type = ev->kind == UDP_EV_NEW ? "new" : ev->kind == UDP_EV_MORE ? "more" : "end";
    JS_SetPropertyStr(ctx, o, "type", JS_NewString(ctx, type));
    JS_SetPropertyStr(ctx, o, "id", JS_NewFloat64(ctx, (double)ev->flow));
    JS_SetPropertyStr(ctx, o, "family", JS_NewInt32(ctx, ev->src.family));
    set_endpoint(ctx, o, "src", "srcPort", &ev->src);
    set_endpoint(ctx, o, "dst", "dstPort", &ev->dst);
    if (ev->kind != UDP_EV_END) {
      JS_SetPropertyStr(ctx, o, "data", JS_NewArrayBufferCopy(ctx, ev->data, ev->len));
    } else {
      JS_SetPropertyStr(ctx, o, "reason", JS_NewString(ctx, ev->reason));
      set_counters(ctx, o, ev->action, ev->pk_up, ev->by_up, ev->pk_down, ev->by_down, ev->ms);
    }
    ug_call(ctx, cb, 1, &o);
    JS_FreeValue(ctx, cb);
    JS_FreeValue(ctx, o);
  }
  free(ev->data);
  free(j);
}

static udp_event *alloc_event(void) {
  event_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->job.complete = complete;
  return &j->ev;
}

static void emit_event(udp_event *ev) {
  ug_loop_post(&UG_CONTAINER_OF(ev, event_job, ev)->job);
}

// The engine's thread, started by the first listener or SOCKS association.
// UGATE_TEST_UDP_PENDING_MAX (tests only: test/e2e/capture-udp-burst.ts)
// lowers how many new flows may wait for their route, so that a test reaches
// the busy drop and its log line without a burst deeper than 4096 flows.
int ug_udp_start(void) {
  static const udp_hooks hooks = {alloc_event, emit_event};
  const char *cap = getenv("UGATE_TEST_UDP_PENDING_MAX");
  if (cap) {
    char *end;
    unsigned long n = strtoul(cap, &end, 10);
    if (*cap == '\0' || *end != '\0' || n > 4096) {
      fprintf(stderr, "ugate: UGATE_TEST_UDP_PENDING_MAX: bad value '%s' (0-4096)\n", cap);
      return -EINVAL;
    }
    udp_pending_caps((unsigned)n, 4 * 1024 * 1024);
  }
  return udp_engine_start(&hooks);
}

static int read_opts(JSContext *ctx, JSValueConst o, udp_listener_opts *opts) {
  double mark = 0;
  *opts = (udp_listener_opts){
      .idle_ms = 60000, .dns_idle_ms = 10000, .max_flows = 4096, .sniff_datagrams = 1};
  if (!JS_IsObject(o)) {
    JS_ThrowTypeError(ctx, "udp: options must be an object");
    return -1;
  }
  if (ug_opt_int(ctx, o, "idleMs", &opts->idle_ms) < 0 ||
      ug_opt_int(ctx, o, "dnsIdleMs", &opts->dns_idle_ms) < 0 ||
      ug_opt_int(ctx, o, "maxFlows", &opts->max_flows) < 0 ||
      ug_opt_int(ctx, o, "sniffDatagrams", &opts->sniff_datagrams) < 0 ||
      ug_opt_number(ctx, o, "mark", &mark) < 0)
    return -1;
  if (opts->idle_ms < 1 || opts->dns_idle_ms < 1 || opts->max_flows < 1 || !(mark >= 0) ||
      mark > 4294967295.0 || opts->sniff_datagrams < 1 || opts->sniff_datagrams > 16) {
    JS_ThrowRangeError(ctx,
                       "udp: idleMs, dnsIdleMs, maxFlows must be >= 1, sniffDatagrams 1-16 and "
                       "mark 0-4294967295");
    return -1;
  }
  opts->mark = (uint32_t)mark;
  return 0;
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

// udpListen(addr, port, opts, cb) → {id, addr, port, family}
static JSValue js_udp_listen(UG_JS_PARAMS) {
  int port;
  if (JS_ToInt32(ctx, &port, argv[1])) return JS_EXCEPTION;
  if (port < 0 || port > 65535) return JS_ThrowRangeError(ctx, "udpListen: bad port %d", port);
  if (!JS_IsFunction(ctx, argv[3]))
    return JS_ThrowTypeError(ctx, "udpListen: callback is not a function");
  udp_listener_opts opts;
  if (read_opts(ctx, argv[2], &opts) < 0) return JS_EXCEPTION;
  const char *s = JS_ToCString(ctx, argv[0]);
  if (!s) return JS_EXCEPTION;
  struct sockaddr_storage ss, bound;
  socklen_t len = parse_addr(s, port, &ss);
  JS_FreeCString(ctx, s);
  if (len == 0) return JS_ThrowTypeError(ctx, "udpListen: not a numeric IP address");
  int r = ug_udp_start();
  if (r < 0) return ug_throw_errno(ctx, "udp thread", -r);
  int id = udp_listen(&ss, len, &opts, &bound);
  if (id < 0) return ug_throw_errno(ctx, "udp listen", -id);
  if (ug_cb_add(ctx, &callbacks, (uint64_t)id, argv[3]) < 0) {
    udp_listener_close(id);
    return JS_ThrowOutOfMemory(ctx);
  }
  ug_loop_ref();  // an open listener keeps the loop alive, as a watched socket does
  udp_key k;
  udp_key_from_sockaddr(&k, &bound);
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "id", JS_NewInt32(ctx, id));
  JS_SetPropertyStr(ctx, o, "addr", key_addr(ctx, &k));
  JS_SetPropertyStr(ctx, o, "port", JS_NewInt32(ctx, k.port));
  JS_SetPropertyStr(ctx, o, "family", JS_NewInt32(ctx, bound.ss_family == AF_INET6 ? 6 : 4));
  return o;
}

static JSValue js_udp_listener_set(UG_JS_PARAMS) {
  int id;
  udp_listener_opts opts;
  if (JS_ToInt32(ctx, &id, argv[0]) || read_opts(ctx, argv[1], &opts) < 0) return JS_EXCEPTION;
  return JS_NewBool(ctx, udp_listener_set(id, &opts) == 0);
}

static JSValue js_udp_close(UG_JS_PARAMS) {
  int id;
  if (JS_ToInt32(ctx, &id, argv[0])) return JS_EXCEPTION;
  JSValue cb = ug_cb_take(&callbacks, (uint64_t)id);
  if (JS_IsUndefined(cb)) return JS_FALSE;
  udp_listener_close(id);  // its flows' end events are posted before the callback goes
  JS_FreeValue(ctx, cb);
  ug_loop_unref();
  return JS_TRUE;
}

// udpRoute(flow, {action, addr?, port?}) (action direct, reject, forward, upstream) → '' or an
// errno name (ENOENT: the flow is gone).
static JSValue js_udp_route(UG_JS_PARAMS) {
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0])) return JS_EXCEPTION;
  if (!JS_IsObject(argv[1])) return JS_ThrowTypeError(ctx, "udpRoute: route must be an object");
  const char *action = NULL, *addr = NULL;
  int port = 0;
  udp_route_spec r = {0};
  JSValue res = JS_EXCEPTION;
  if (ug_opt_string(ctx, argv[1], "action", &action) < 0 ||
      ug_opt_string(ctx, argv[1], "addr", &addr) < 0 || ug_opt_int(ctx, argv[1], "port", &port) < 0)
    goto out;
  if (action && strcmp(action, "direct") == 0) {
    r.mode = UDP_DIRECT;
  } else if (action && strcmp(action, "reject") == 0) {
    r.mode = UDP_REJECT;
  } else if (action && (strcmp(action, "forward") == 0 || strcmp(action, "upstream") == 0)) {
    // upstream: addr:port is a SOCKS5 server's UDP relay (its UDP ASSOCIATE's answer).
    r.mode = action[0] == 'f' ? UDP_FORWARD : UDP_SOCKS;
    r.target_len = addr && port > 0 && port < 65536 ? parse_addr(addr, port, &r.target) : 0;
    if (r.target_len == 0) {
      JS_ThrowTypeError(ctx, "udpRoute: %s needs a numeric addr and a port 1-65535", action);
      goto out;
    }
  } else {
    JS_ThrowTypeError(ctx, "udpRoute: action must be direct, reject, forward or upstream");
    goto out;
  }
  int err = udp_route((uint64_t)id, &r);
  char spare[UG_ERRNO_NAME_MAX];
  res = JS_NewString(ctx, err == 0 ? "" : ug_errno_name(-err, spare));
out:
  if (action) JS_FreeCString(ctx, action);
  if (addr) JS_FreeCString(ctx, addr);
  return res;
}

// udpFlowClose(id): end one flow (reason "closed"); false when it is gone.
static JSValue js_udp_flow_close(UG_JS_PARAMS) {
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0])) return JS_EXCEPTION;
  return JS_NewBool(ctx, id >= 1 && udp_flow_close((uint64_t)id) == 0);
}

static JSValue js_udp_close_all(UG_JS_PARAMS) {
  (void)ctx;
  udp_close_all();
  return JS_UNDEFINED;
}

static JSValue js_udp_stats(UG_JS_PARAMS) {
  udp_counters c;
  udp_counters_get(&c);
  // Counters as numbers, named as in src/io/native.d.ts (UdpStats).
  JSValue o = JS_NewObject(ctx), d = JS_NewObject(ctx);
#define SET(obj, name, v) JS_SetPropertyStr(ctx, obj, name, JS_NewFloat64(ctx, (double)(v)))
  SET(o, "flowsLive", c.flows_live);
  SET(o, "flowsPending", c.flows_pending);
  SET(o, "flowsPendingPeak", c.flows_pending_peak);
  SET(o, "flowsTotal", c.flows_total);
  SET(o, "flowsExpired", c.flows_expired);
  SET(o, "flowsEvicted", c.flows_evicted);
  SET(o, "replySockets", c.reply_sockets);
  SET(o, "packetsUp", c.pk_up);
  SET(o, "bytesUp", c.by_up);
  SET(o, "packetsDown", c.pk_down);
  SET(o, "bytesDown", c.by_down);
  SET(d, "queueFull", c.drop_queue_full);
  SET(d, "rejected", c.drop_rejected);
  SET(d, "busy", c.drop_busy);
  SET(d, "noOrigDst", c.drop_no_origdst);
  SET(d, "truncated", c.drop_truncated);
  SET(d, "sendFailed", c.drop_send_failed);
  SET(d, "replySocket", c.drop_reply_socket);
  SET(d, "noMemory", c.drop_no_memory);
#undef SET
  JS_SetPropertyStr(ctx, o, "drops", d);
  return o;
}

static JSValue js_udp_flows(UG_JS_PARAMS) {
  int n;
  udp_flow_info *list = udp_flows_list(&n);
  JSValue arr = JS_NewArray(ctx);
  for (int i = 0; i < n; i++) {
    udp_flow_info *f = &list[i];
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "id", JS_NewFloat64(ctx, (double)f->id));
    JS_SetPropertyStr(ctx, o, "listener", JS_NewInt32(ctx, f->listener));
    JS_SetPropertyStr(ctx, o, "family", JS_NewInt32(ctx, f->src.family));
    set_endpoint(ctx, o, "src", "srcPort", &f->src);
    set_endpoint(ctx, o, "dst", "dstPort", &f->dst);
    set_counters(ctx, o, f->action, f->pk_up, f->by_up, f->pk_down, f->by_down, f->age_ms);
    JS_SetPropertyStr(ctx, o, "idleMs", JS_NewFloat64(ctx, (double)(int64_t)f->idle_ms));
    JS_SetPropertyUint32(ctx, arr, i, o);
  }
  free(list);
  return arr;
}

// At exit, after the loop ended: stop the thread, drop the callbacks.
void ug_udp_shutdown(JSContext *ctx) {
  udp_engine_stop();
  ug_cb_clear(ctx, &callbacks);
}

static const JSCFunctionListEntry udp_funcs[] = {
    JS_CFUNC_DEF("udpListen", 4, js_udp_listen),
    JS_CFUNC_DEF("udpListenerSet", 2, js_udp_listener_set),
    JS_CFUNC_DEF("udpClose", 1, js_udp_close),
    JS_CFUNC_DEF("udpRoute", 2, js_udp_route),
    JS_CFUNC_DEF("udpFlowClose", 1, js_udp_flow_close),
    JS_CFUNC_DEF("udpCloseAll", 0, js_udp_close_all),
    JS_CFUNC_DEF("udpStats", 0, js_udp_stats),
    JS_CFUNC_DEF("udpFlows", 0, js_udp_flows),
};

ug_exports ug_udp_exports(void) {
  return (ug_exports){udp_funcs, sizeof udp_funcs / sizeof udp_funcs[0]};
}
