// JS side of the relay: relay(a, b, opts, cb) hands two sockets to relay.c.
// A finished relay is posted back to the loop thread as a job, which calls
// cb. The unfinished relays are listed here so that exit can release them.
// Ids, counts and live bytes are relay.c's: they cover every relay, the
// native forward's (mod_gate.c) too.
#define _GNU_SOURCE
#include <stdlib.h>

#include "relay.h"
#include "ugate.h"

typedef struct relay_call relay_call;
struct relay_call {
  ug_job job;               // posted to the loop thread once the relay is done
  relay relay;              // the engine's part
  relay_call *prev, *next;  // unfinished relays, loop thread only
  JSValue cb;               // touched only on the loop thread
  bool posted;              // set on the relay thread; read after it was joined
};

static relay_call *unfinished;

static void forget(relay_call *call) {
  if (call->prev)
    call->prev->next = call->next;
  else
    unfinished = call->next;
  if (call->next) call->next->prev = call->prev;
}

// Relay thread: hand the result over to the loop thread.
static void post_result(relay *r) {
  relay_call *call = UG_CONTAINER_OF(r, relay_call, relay);
  call->posted = true;
  ug_loop_post(&call->job);
}

// Loop thread: the relay is over; tell JS.
static void complete(JSContext *ctx, ug_job *job) {
  relay_call *call = UG_CONTAINER_OF(job, relay_call, job);
  relay *r = &call->relay;
  forget(call);
  relay_release(r);
  ug_loop_unref();
  JSValue res = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, res, "bytesUp", JS_NewFloat64(ctx, (double)r->up.bytes));
  JS_SetPropertyStr(ctx, res, "bytesDown", JS_NewFloat64(ctx, (double)r->down.bytes));
  JS_SetPropertyStr(ctx, res, "ms",
                    JS_NewFloat64(ctx, (double)(int64_t)(ug_now_ms() - r->start_ms)));
  JS_SetPropertyStr(ctx, res, "reason", JS_NewString(ctx, r->reason));
  char spare[UG_ERRNO_NAME_MAX];
  JS_SetPropertyStr(ctx, res, "error",
                    JS_NewString(ctx, r->err ? ug_errno_name(r->err, spare) : ""));
  JS_SetPropertyStr(ctx, res, "spliced", JS_NewBool(ctx, r->spliced));
  JSValue cb = call->cb;
  free(call);
  ug_call(ctx, cb, 1, &res);
  JS_FreeValue(ctx, res);
  JS_FreeValue(ctx, cb);
}

static JSValue js_relay(UG_JS_PARAMS) {
  int a, b, idle_ms = 0;
  if (JS_ToInt32(ctx, &a, argv[0]) || JS_ToInt32(ctx, &b, argv[1])) return JS_EXCEPTION;
  if (a < 0 || b < 0 || a == b) return JS_ThrowRangeError(ctx, "relay: bad fds %d, %d", a, b);
  if (!JS_IsObject(argv[2])) return JS_ThrowTypeError(ctx, "relay: options must be an object");
  if (!JS_IsFunction(ctx, argv[3]))
    return JS_ThrowTypeError(ctx, "relay: callback is not a function");
  bool splice = false;
  double up_limit = 0;
  int limited = 0;
  uint8_t *up = NULL, *down = NULL;
  size_t up_len = 0, down_len = 0;
  if (ug_opt_bool(ctx, argv[2], "splice", &splice) < 0 ||
      ug_opt_int(ctx, argv[2], "idleMs", &idle_ms) < 0 ||
      (limited = ug_opt_number(ctx, argv[2], "upLimit", &up_limit)) < 0)
    return JS_EXCEPTION;
  if (limited && !(up_limit >= 0)) return JS_ThrowRangeError(ctx, "relay: upLimit must be >= 0");
  if (ug_opt_bytes(ctx, argv[2], "up", &up, &up_len) < 0 ||
      ug_opt_bytes(ctx, argv[2], "down", &down, &down_len) < 0) {
    free(up);
    return JS_EXCEPTION;
  }
  if (up_len >= RELAY_INITIAL_MAX || down_len >= RELAY_INITIAL_MAX) {
    free(up);
    free(down);
    return JS_ThrowRangeError(ctx, "relay: initial data of %zu bytes is too large",
                              up_len > down_len ? up_len : down_len);
  }
  relay_call *call = malloc(sizeof *call);
  if (!call) {
    free(up);
    free(down);
    return JS_ThrowOutOfMemory(ctx);
  }
  *call = (relay_call){.job.complete = complete, .cb = JS_DupValue(ctx, argv[3])};
  relay *r = &call->relay;
  relay_init(r, a, b, splice, idle_ms, post_result);
  if (limited) relay_set_limit(&r->up, (uint64_t)up_limit);
  relay_set_initial(&r->up, up, up_len);
  relay_set_initial(&r->down, down, down_len);
  // JS's watches on these fds end here: the relay thread owns them now.
  ug_loop_forget_fd(ctx, a);
  ug_loop_forget_fd(ctx, b);
  call->next = unfinished;
  if (unfinished) unfinished->prev = call;
  unfinished = call;
  ug_loop_ref();
  relay_start(r);
  return JS_NewFloat64(ctx, r->id);
}

static JSValue js_relay_abort_all(UG_JS_PARAMS) {
  (void)ctx;
  relay_abort_all();
  return JS_UNDEFINED;
}

// relayAbort(id): close one relay (reason "closed"); false when it is already over.
static JSValue js_relay_abort(UG_JS_PARAMS) {
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0])) return JS_EXCEPTION;
  for (relay_call *call = unfinished; call; call = call->next) {
    if (call->relay.id != id) continue;
    // Still unfinished here, so its memory stays valid until complete() runs.
    relay_abort(&call->relay);
    return JS_TRUE;
  }
  return JS_FALSE;
}

// relayBytes(): [id, up, down, ...] for every unfinished relay (JS-started and
// native forwards alike), bytes as of the relay thread's last once-a-second
// publication.
static JSValue js_relay_bytes(UG_JS_PARAMS) {
  (void)argc;
  (void)argv;
  JSValue out = JS_NewArray(ctx);
  uint32_t i = 0;
  for (relay *r = relay_first(); r; r = r->lnext) {
    uint64_t up, down;
    relay_bytes(r, &up, &down);
    JS_SetPropertyUint32(ctx, out, i++, JS_NewFloat64(ctx, r->id));
    JS_SetPropertyUint32(ctx, out, i++, JS_NewFloat64(ctx, (double)up));
    JS_SetPropertyUint32(ctx, out, i++, JS_NewFloat64(ctx, (double)down));
  }
  return out;
}

static JSValue js_relay_stats(UG_JS_PARAMS) {
  relay_counters c;
  relay_counters_get(&c);
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "active", JS_NewInt32(ctx, relay_active()));
  JS_SetPropertyStr(ctx, o, "total", JS_NewFloat64(ctx, relay_total()));
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
  for (relay_call *call = unfinished, *next; call; call = next) {
    next = call->next;
    JS_FreeValue(ctx, call->cb);
    call->cb = JS_UNDEFINED;
    if (!call->posted) free(call);  // posted ones sit in the loop's queue, which is gone with it
  }
  unfinished = NULL;
}

static const JSCFunctionListEntry relay_funcs[] = {
    JS_CFUNC_DEF("relay", 4, js_relay),
    JS_CFUNC_DEF("relayAbort", 1, js_relay_abort),
    JS_CFUNC_DEF("relayAbortAll", 0, js_relay_abort_all),
    JS_CFUNC_DEF("relayStats", 0, js_relay_stats),
    JS_CFUNC_DEF("relayBytes", 0, js_relay_bytes),
};

ug_exports ug_relay_exports(void) {
  return (ug_exports){relay_funcs, sizeof relay_funcs / sizeof relay_funcs[0]};
}
