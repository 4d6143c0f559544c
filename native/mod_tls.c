// tlsConfig / tlsConfigInfo: the mesh's TLS configs (tls.c) as opaque JS
// objects (src/io/mesh-identity.ts). The object holds one reference; the
// HBONE binding takes the tls_config* from it (ug_tls_config_from_js).
// tlsWebConfig: a web PKI client config (a CA bundle) of the same class, for
// DNS over TLS (mod_dot.c takes it with ug_tls_web_config_from_js).
#include <stdlib.h>

#include "ugate.h"
// After ugate.h (quickjs.h): declares ug_tls_config_from_js.
#include "tls.h"

static JSClassID tls_class_id;

static void tls_finalizer(UG_UNUSED JSRuntime *rt, JSValueConst val) {
  tls_config_unref(JS_GetOpaque(val, tls_class_id));
}

static const JSClassDef tls_class = {"TlsConfig", .finalizer = tls_finalizer};

static int register_class(JSContext *ctx) {
  JSRuntime *rt = JS_GetRuntime(ctx);
  if (!tls_class_id) JS_NewClassID(rt, &tls_class_id);
  if (JS_IsRegisteredClass(rt, tls_class_id)) return 0;
  return JS_NewClass(rt, tls_class_id, &tls_class);
}

// The config behind v when it is of the mode asked for; NULL with a TypeError otherwise.
static tls_config *config_of(JSContext *ctx, JSValueConst v, bool web) {
  if (register_class(ctx)) return NULL;
  tls_config *c = JS_GetOpaque(v, tls_class_id);
  if (!c || tls_config_is_web(c) != web) {
    JS_ThrowTypeError(ctx, "not a TLS config (native.%s's result)",
                      web ? "tlsWebConfig" : "tlsConfig");
    return NULL;
  }
  return c;
}

tls_config *ug_tls_config_from_js(JSContext *ctx, JSValueConst v) {
  return config_of(ctx, v, false);
}

tls_config *ug_tls_web_config_from_js(JSContext *ctx, JSValueConst v) {
  return config_of(ctx, v, true);
}

// An object of the class holding c's one reference (given up on failure).
static JSValue wrap(JSContext *ctx, tls_config *c) {
  JSValue result = JS_NewObjectClass(ctx, (int)tls_class_id);
  if (JS_IsException(result))
    tls_config_unref(c);
  else
    JS_SetOpaque(result, c);
  return result;
}

static JSValue js_tls_config(UG_JS_PARAMS) {
  static const char *const keys[] = {"chain", "key", "roots", "trustDomain"};
  enum { NKEYS = sizeof keys / sizeof keys[0] };
  const char *v[NKEYS] = {0};
  bool server = false;
  JSValue result = JS_EXCEPTION;
  int i = 0;
  if (register_class(ctx) || ug_opt_bool(ctx, argv[0], "server", &server) < 0) return JS_EXCEPTION;
  for (; i < NKEYS; i++) {
    int r = ug_opt_string(ctx, argv[0], keys[i], &v[i]);
    if (r < 0) break;
    if (r == 0 && i < 3) {
      JS_ThrowTypeError(ctx, "tlsConfig: %s is missing", keys[i]);
      break;
    }
  }
  if (i == NKEYS) {
    tls_config_opts o = {server, v[0], v[1], v[2], v[3]};
    char err[TLS_ERR_MAX];
    tls_config *c = tls_config_new(&o, err);
    result = c ? wrap(ctx, c) : JS_ThrowPlainError(ctx, "%s", err);
  }
  for (int j = 0; j < NKEYS; j++)
    if (v[j]) JS_FreeCString(ctx, v[j]);
  return result;
}

// tlsWebConfig(caFile): the CA bundle's certificates as a web PKI client config.
static JSValue js_tls_web_config(UG_JS_PARAMS) {
  if (register_class(ctx)) return JS_EXCEPTION;
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  char err[TLS_ERR_MAX];
  tls_config *c = tls_config_new_web(path, err);
  JS_FreeCString(ctx, path);
  return c ? wrap(ctx, c) : JS_ThrowPlainError(ctx, "%s", err);
}

static JSValue js_tls_config_info(UG_JS_PARAMS) {
  if (register_class(ctx)) return JS_EXCEPTION;
  tls_config *c = JS_GetOpaque(argv[0], tls_class_id);
  if (!c) return JS_ThrowTypeError(ctx, "not a TLS config");
  JSValue o = JS_NewObject(ctx);
  if (tls_config_is_web(c)) {
    JS_SetPropertyStr(ctx, o, "web", JS_NewBool(ctx, true));
    JS_SetPropertyStr(ctx, o, "roots", JS_NewInt32(ctx, tls_config_web_roots(c)));
    return o;
  }
  JS_SetPropertyStr(ctx, o, "server", JS_NewBool(ctx, tls_config_is_server(c)));
  JS_SetPropertyStr(ctx, o, "spiffeId", JS_NewString(ctx, tls_config_spiffe_id(c)));
  JS_SetPropertyStr(ctx, o, "nodeId", JS_NewString(ctx, tls_config_node_id(c)));
  return o;
}

static const JSCFunctionListEntry tls_funcs[] = {
    JS_CFUNC_DEF("tlsConfig", 1, js_tls_config),
    JS_CFUNC_DEF("tlsConfigInfo", 1, js_tls_config_info),
    JS_CFUNC_DEF("tlsWebConfig", 1, js_tls_web_config),
};

ug_exports ug_tls_exports(void) {
  return (ug_exports){tls_funcs, sizeof tls_funcs / sizeof tls_funcs[0]};
}
