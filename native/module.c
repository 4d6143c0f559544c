// The `ugate:native` module: every native file's exports in one namespace.
#include "ugate.h"

typedef ug_exports (*exports_fn)(void);
static const exports_fn parts[] = {
    ug_sys_exports,  ug_loop_exports,  ug_net_exports,       ug_dns_exports,   ug_relay_exports,
    ug_proc_exports, ug_nlmon_exports, ug_gate_exports,      ug_quic_exports,  ug_identity_exports,
    ug_tls_exports,  ug_udp_exports,   ug_socks_udp_exports, ug_hbone_exports, ug_dot_exports};
#define NPARTS (int)(sizeof parts / sizeof parts[0])

static int init_module(JSContext *ctx, JSModuleDef *m) {
  for (int i = 0; i < NPARTS; i++) {
    ug_exports e = parts[i]();
    if (JS_SetModuleExportList(ctx, m, e.tab, e.len)) return -1;
  }
  if (JS_SetModuleExport(ctx, m, "argv", ug_sys_argv(ctx))) return -1;
  return JS_SetModuleExport(ctx, m, "engineVersion", JS_NewString(ctx, JS_GetVersion()));
}

JSModuleDef *ug_native_module(JSContext *ctx, const char *name) {
  JSModuleDef *m = JS_NewCModule(ctx, name, init_module);
  if (!m) return NULL;
  for (int i = 0; i < NPARTS; i++) {
    ug_exports e = parts[i]();
    if (JS_AddModuleExportList(ctx, m, e.tab, e.len)) return NULL;
  }
  if (JS_AddModuleExport(ctx, m, "argv") || JS_AddModuleExport(ctx, m, "engineVersion"))
    return NULL;
  return m;
}
