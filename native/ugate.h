// ugate native helper: declarations shared by the C files.
// The JS bundle sees all of this as one module, `ugate:native`
// (types in src/io/native.d.ts).
#ifndef UGATE_H
#define UGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quickjs.h"

// Invariants that must hold; a broken one is a bug, so stop loudly.
#define UG_CHECK(x)                             \
  do {                                          \
    if (!(x)) ug_fatal(__FILE__, __LINE__, #x); \
  } while (0)
void ug_fatal(const char *file, int line, const char *what);

// ---- errors ---------------------------------------------------------------
// Throw an Error with .code (errno name), .errno and .syscall; returns JS_EXCEPTION.
JSValue ug_throw_errno(JSContext *ctx, const char *syscall, int err);
const char *ug_errno_name(int err);

// ArrayBuffer or Uint8Array → bytes (borrowed); -1 with an exception otherwise.
int ug_get_bytes(JSContext *ctx, JSValueConst v, const uint8_t **p, size_t *len);

// ---- event loop (loop.c) ----------------------------------------------------
// Work finished on another thread, handed back to the loop thread.
typedef struct ug_job ug_job;
struct ug_job {
  ug_job *next;
  void (*complete)(JSContext *ctx, ug_job *job);  // runs on the loop thread
};

int ug_loop_init(JSContext *ctx);
// Runs until nothing keeps the loop alive or exit() was called; returns the exit code.
int ug_loop_run(JSContext *ctx);
void ug_loop_free(JSContext *ctx);
// Thread-safe: queue a job for the loop thread and wake it.
void ug_loop_post(ug_job *job);
// Jobs pending on other threads keep the loop alive.
void ug_loop_ref(void);
void ug_loop_unref(void);
// Called when fd is closed by JS, so its watch does not outlive it.
void ug_loop_forget_fd(JSContext *ctx, int fd);
void ug_loop_request_exit(int code);
// Run a JS callback; report an uncaught exception and stop the loop.
void ug_call(JSContext *ctx, JSValueConst fn, int argc, JSValueConst *argv);
double ug_now_ms(void);

// ---- module pieces ----------------------------------------------------------
// Each file adds its functions and constants to the module's export table.
typedef struct {
  const JSCFunctionListEntry *tab;
  int len;
} ug_exports;
ug_exports ug_sys_exports(void);
ug_exports ug_loop_exports(void);
ug_exports ug_net_exports(void);
ug_exports ug_dns_exports(void);
ug_exports ug_relay_exports(void);
ug_exports ug_proc_exports(void);
ug_exports ug_unix_exports(void);
ug_exports ug_nlmon_exports(void);
// Run the command JS set with setExitCommand (if any); called on the way out.
void ug_proc_run_exit_command(void);
void ug_sys_set_argv(int argc, char **argv);
JSValue ug_sys_argv(JSContext *ctx);

JSModuleDef *ug_native_module(JSContext *ctx, const char *name);

// At exit, after the loop ended: stop threads and drop callbacks never called.
void ug_relay_shutdown(JSContext *ctx);
int ug_relay_init(void);
void ug_dns_shutdown(JSContext *ctx);

// The compiled JS bundle (generated at build time into build/gen/bundle.c).
extern const uint8_t ugate_bundle[];
extern const uint32_t ugate_bundle_size;

#endif
