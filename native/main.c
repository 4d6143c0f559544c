// ugate: the QuickJS-ng runtime, the native module and the event loop,
// running the TypeScript bundle compiled to bytecode at build time.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ugate.h"

static JSModuleDef *load_module(JSContext *ctx, const char *name, void *opaque) {
  (void)opaque;
  if (!strcmp(name, "ugate:native")) return ug_native_module(ctx, name);
  JS_ThrowReferenceError(ctx, "module '%s' is not built into ugate", name);
  return NULL;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);  // a write to a closed socket is an error code, not a death
  ug_sys_set_argv(argc, argv);
  const JSMallocFunctions *heap = ug_jsheap();
  JSRuntime *rt = heap ? JS_NewRuntime2(heap, NULL) : JS_NewRuntime();
  JSContext *ctx = rt ? JS_NewContext(rt) : NULL;
  if (!ctx || ug_loop_init(ctx) < 0 || ug_relay_init() < 0) {
    fprintf(stderr, "ugate: cannot start the runtime\n");
    return 70;
  }
  JS_SetModuleLoaderFunc(rt, NULL, load_module, NULL);
  JSValue mod = JS_ReadObject(ctx, ugate_bundle, ugate_bundle_size, JS_READ_OBJ_BYTECODE);
  JSValue done = JS_UNDEFINED;
  int code = 70;
  if (!JS_IsException(mod) && JS_ResolveModule(ctx, mod) == 0) {
    done = JS_EvalFunction(ctx, mod);  // a promise: the module's top-level await
    if (!JS_IsException(done)) code = ug_loop_run(ctx);
  }
  if (JS_IsException(mod) || JS_IsException(done)) {
    JSValue exc = JS_GetException(ctx);
    const char *msg = JS_ToCString(ctx, exc);
    fprintf(stderr, "ugate: cannot load the bundle: %s\n", msg ? msg : "?");
    if (msg) JS_FreeCString(ctx, msg);
    JS_FreeValue(ctx, exc);
  }
  JS_FreeValue(ctx, done);
  ug_proc_run_exit_command();  // e.g. drop the nft table after a fatal error
  ug_relay_shutdown(ctx);
  ug_udp_shutdown(ctx);
  ug_socks_udp_shutdown(ctx);  // after the UDP thread ended
  ug_hbone_shutdown(ctx);
  ug_gate_shutdown(ctx);  // after the relay thread ended
  ug_dns_shutdown(ctx);
  ug_dot_shutdown(ctx);  // before the loop's watches go
  ug_loop_free(ctx);
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  return code;
}
