// JS side of the relay: relay(a, b, opts, cb) hands two sockets to relay.c;
// the result comes back through the loop's eventfd as a posted job.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "relay.h"

static relay *all;  // unfinished relays, loop thread only
static int active;
static double total;

static void unlink_all(relay *r) {
  if (r->all_prev)
    r->all_prev->all_next = r->all_next;
  else
    all = r->all_next;
  if (r->all_next) r->all_next->all_prev = r->all_prev;
}

static void complete(JSContext *ctx, ug_job *job) {
  relay *r = (relay *)job;
  unlink_all(r);
  active--;
  ug_loop_unref();
  JSValue res = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, res, "bytesUp", JS_NewFloat64(ctx, (double)r->up.bytes));
  JS_SetPropertyStr(ctx, res, "bytesDown", JS_NewFloat64(ctx, (double)r->down.bytes));
  JS_SetPropertyStr(ctx, res, "ms",
                    JS_NewFloat64(ctx, (double)(int64_t)(ug_now_ms() - r->start_ms)));
  JS_SetPropertyStr(ctx, res, "reason", JS_NewString(ctx, r->reason));
  char en[16] = "";
  if (r->err) snprintf(en, sizeof en, "%s", ug_errno_name(r->err) ? ug_errno_name(r->err) : "E?");
  if (r->err && !ug_errno_name(r->err)) snprintf(en, sizeof en, "E%d", r->err);
  JS_SetPropertyStr(ctx, res, "error", JS_NewString(ctx, en));
  JS_SetPropertyStr(ctx, res, "spliced", JS_NewBool(ctx, r->spliced));
  JSValue cb = r->cb;
  free(r);
  ug_call(ctx, cb, 1, &res);
  JS_FreeValue(ctx, res);
  JS_FreeValue(ctx, cb);
}

static int get_initial(JSContext *ctx, JSValueConst opts, const char *key, relay_dir *d) {
  JSValue v = JS_GetPropertyStr(ctx, opts, key);
  int rc = 0;
  if (!JS_IsUndefined(v) && !JS_IsNull(v)) {
    const uint8_t *p;
    size_t len;
    rc = ug_get_bytes(ctx, v, &p, &len);
    if (rc == 0 && relay_set_initial(d, p, len) < 0) {
      JS_ThrowOutOfMemory(ctx);
      rc = -1;
    }
  }
  JS_FreeValue(ctx, v);
  return rc;
}

static JSValue js_relay(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  int a, b, idle_ms = 0;
  if (JS_ToInt32(ctx, &a, argv[0]) || JS_ToInt32(ctx, &b, argv[1])) return JS_EXCEPTION;
  if (a < 0 || b < 0 || a == b) return JS_ThrowRangeError(ctx, "relay: bad fds %d, %d", a, b);
  if (!JS_IsObject(argv[2])) return JS_ThrowTypeError(ctx, "relay: options must be an object");
  if (!JS_IsFunction(ctx, argv[3]))
    return JS_ThrowTypeError(ctx, "relay: callback is not a function");
  JSValue v = JS_GetPropertyStr(ctx, argv[2], "splice");
  bool splice = JS_ToBool(ctx, v);
  JS_FreeValue(ctx, v);
  v = JS_GetPropertyStr(ctx, argv[2], "idleMs");
  int bad = !JS_IsUndefined(v) && JS_ToInt32(ctx, &idle_ms, v);
  JS_FreeValue(ctx, v);
  if (bad) return JS_EXCEPTION;
  double up_limit = -1;
  v = JS_GetPropertyStr(ctx, argv[2], "upLimit");
  int lim = 0;  // 0 ok, -1 exception pending, -2 out of range
  if (!JS_IsUndefined(v)) lim = JS_ToFloat64(ctx, &up_limit, v) ? -1 : up_limit >= 0 ? 0 : -2;
  JS_FreeValue(ctx, v);
  if (lim == -1) return JS_EXCEPTION;
  if (lim == -2) return JS_ThrowRangeError(ctx, "relay: upLimit must be >= 0");
  relay *r = malloc(sizeof *r);
  if (!r) return JS_ThrowOutOfMemory(ctx);
  relay_init(r, a, b, splice, idle_ms);
  if (up_limit >= 0) relay_set_limit(&r->up, (uint64_t)up_limit);
  if (get_initial(ctx, argv[2], "up", &r->up) || get_initial(ctx, argv[2], "down", &r->down)) {
    free(r->up.buf);
    free(r->down.buf);
    free(r);
    return JS_EXCEPTION;
  }
  // JS's watches on these fds end here: the relay thread owns them now.
  ug_loop_forget_fd(ctx, a);
  ug_loop_forget_fd(ctx, b);
  r->job.complete = complete;
  r->cb = JS_DupValue(ctx, argv[3]);
  r->all_next = all;
  if (all) all->all_prev = r;
  all = r;
  active++;
  total++;
  ug_loop_ref();
  if (relay_start(r) < 0) UG_CHECK(!"relay thread could not start");
  return JS_NewFloat64(ctx, total);
}

static JSValue js_relay_abort_all(JSContext *ctx, JSValueConst this_val, int argc,
                                  JSValueConst *argv) {
  (void)ctx;
  (void)this_val;
  (void)argc;
  (void)argv;
  relay_abort_all();
  return JS_UNDEFINED;
}

static JSValue js_relay_stats(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  (void)argv;
  relay_counters c;
  relay_counters_get(&c);
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "active", JS_NewInt32(ctx, active));
  JS_SetPropertyStr(ctx, o, "total", JS_NewFloat64(ctx, total));
  JS_SetPropertyStr(ctx, o, "spliceCalls", JS_NewFloat64(ctx, (double)c.splice_calls));
  JS_SetPropertyStr(ctx, o, "copyCalls", JS_NewFloat64(ctx, (double)c.copy_calls));
  JS_SetPropertyStr(ctx, o, "pipesPooled", JS_NewInt32(ctx, c.pipes_pooled));
  return o;
}

int ug_relay_init(void) {
  return relay_engine_start();
}

// At exit: stop the thread, then drop what is left without calling back.
void ug_relay_shutdown(JSContext *ctx) {
  relay_engine_stop();
  for (relay *r = all, *next; r; r = next) {
    next = r->all_next;
    JS_FreeValue(ctx, r->cb);
    r->cb = JS_UNDEFINED;
    if (!r->posted) free(r);  // posted ones sit in the loop's queue, which is gone with it
  }
  all = NULL;
}

static const JSCFunctionListEntry relay_funcs[] = {
    JS_CFUNC_DEF("relay", 4, js_relay),
    JS_CFUNC_DEF("relayAbortAll", 0, js_relay_abort_all),
    JS_CFUNC_DEF("relayStats", 0, js_relay_stats),
};

ug_exports ug_relay_exports(void) {
  return (ug_exports){relay_funcs, sizeof relay_funcs / sizeof relay_funcs[0]};
}
