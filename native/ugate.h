// ugate native helper: declarations shared by the C files.
// The JS bundle sees all of this as one module, `ugate:native`
// (types in src/io/native.d.ts).
#ifndef UGATE_H
#define UGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quickjs.h"

// What every function JS calls receives (quickjs.h's JSCFunction). QuickJS
// pads argv to the length the export table declares, so few need argc.
#define UG_UNUSED __attribute__((unused))
#define UG_JS_PARAMS \
  JSContext *ctx, UG_UNUSED JSValueConst this_val, UG_UNUSED int argc, UG_UNUSED JSValueConst *argv

// ---- jsheap.c ----
// QuickJS's backing allocator for JS_NewRuntime2; NULL in an ASan build
// (malloc's then, so the sanitizer sees every block).
const JSMallocFunctions *ug_jsheap(void);

// ---- util.c ----------------------------------------------------------------
// Invariants that must hold; a broken one is a bug, so stop loudly.
#define UG_CHECK(x)                             \
  do {                                          \
    if (!(x)) ug_fatal(__FILE__, __LINE__, #x); \
  } while (0)
void ug_fatal(const char *file, int line, const char *what);
// The struct of `type` whose field `member` is at p.
#define UG_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

// Throw an Error with .code (errno name), .errno and .syscall; returns JS_EXCEPTION.
JSValue ug_throw_errno(JSContext *ctx, const char *syscall, int err);
// "ECONNRESET" for the errno values a network daemon meets, else "E<n>" written to spare.
#define UG_ERRNO_NAME_MAX 16
const char *ug_errno_name(int err, char spare[UG_ERRNO_NAME_MAX]);

// accept4 (non-blocking, close-on-exec) skipping the errors of one aborted
// connection; -1 with errno (EAGAIN: none pending) otherwise.
struct sockaddr_storage;
int ug_accept(int lfd, struct sockaddr_storage *ss);

// ArrayBuffer or Uint8Array → bytes (borrowed); -1 with an exception otherwise.
int ug_get_bytes(JSContext *ctx, JSValueConst v, const uint8_t **p, size_t *len);

// Option readers: opts[key] converted into *out. Return 1 = read, 0 = absent
// (undefined or null: *out is left as it was), -1 = an exception is pending.
int ug_opt_bool(JSContext *ctx, JSValueConst opts, const char *key, bool *out);
int ug_opt_int(JSContext *ctx, JSValueConst opts, const char *key, int *out);
int ug_opt_number(JSContext *ctx, JSValueConst opts, const char *key, double *out);
// *out is freed by the caller with JS_FreeCString.
int ug_opt_string(JSContext *ctx, JSValueConst opts, const char *key, const char **out);
// A malloc'd copy the caller owns (left NULL when empty) and its length.
int ug_opt_bytes(JSContext *ctx, JSValueConst opts, const char *key, uint8_t **out, size_t *len);

// JS callbacks by id (a UDP listener's, a SOCKS association's): a few at a
// time, so a list. Loop thread only. A zero table is empty.
typedef struct ug_cb_entry ug_cb_entry;
typedef struct {
  ug_cb_entry *head;
} ug_cb_table;
// Keeps a reference to cb under id; -1 (no exception thrown) when out of memory.
int ug_cb_add(JSContext *ctx, ug_cb_table *t, uint64_t id, JSValueConst cb);
// A new reference to id's callback (the caller frees it); JS_UNDEFINED when none.
JSValue ug_cb_get(JSContext *ctx, ug_cb_table *t, uint64_t id);
// Removes id's entry, handing its reference to the caller; JS_UNDEFINED when none.
JSValue ug_cb_take(ug_cb_table *t, uint64_t id);
// Drops every entry (at exit).
void ug_cb_clear(JSContext *ctx, ug_cb_table *t);

// ---- event loop (loop.c) ----------------------------------------------------
// Work finished on another thread, handed back to the loop thread.
typedef struct ug_job ug_job;
struct ug_job {
  ug_job *next;
  void (*complete)(JSContext *ctx, ug_job *job);  // runs on the loop thread
};

// A FIFO of jobs linked through job->next; threads that share one lock it.
typedef struct {
  ug_job *head, *tail;
} ug_job_queue;
void ug_job_queue_push(ug_job_queue *q, ug_job *job);
ug_job *ug_job_queue_pop(ug_job_queue *q);  // NULL when empty

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
// A watch that calls C instead of JS (the native forward): fn(ctx, fd, events, arg)
// while fd is ready (level-triggered). Replaces any watch of fd; -1 with errno.
// With EPOLLONESHOT in events: once, and the watch is over when fn runs (no
// epoll_ctl to end it: a connection's sockets are watched once each).
typedef void ug_watch_fn(JSContext *ctx, int fd, uint32_t events, void *arg);
int ug_loop_watch_c(JSContext *ctx, int fd, int events, ug_watch_fn *fn, void *arg);
// The same for an fd whose one-shot watch fired (and which is still open): one
// EPOLL_CTL_MOD re-arms its registration.
int ug_loop_rearm_c(JSContext *ctx, int fd, int events, ug_watch_fn *fn, void *arg);
void ug_loop_unwatch(JSContext *ctx, int fd);
// The watch of fd ends here, with no epoll_ctl: for an fd about to be closed,
// or one whose one-shot registration may fire once more (then ignored).
void ug_loop_drop(JSContext *ctx, int fd);
// Run a JS callback; report an uncaught exception and stop the loop.
void ug_call(JSContext *ctx, JSValueConst fn, int argc, JSValueConst *argv);
// The same, returning what fn returned (to be freed; undefined after an exception).
JSValue ug_call_value(JSContext *ctx, JSValueConst fn, int argc, JSValueConst *argv);
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
ug_exports ug_nlmon_exports(void);
ug_exports ug_gate_exports(void);
ug_exports ug_quic_exports(void);
ug_exports ug_identity_exports(void);
ug_exports ug_tls_exports(void);
ug_exports ug_udp_exports(void);
ug_exports ug_socks_udp_exports(void);
ug_exports ug_hbone_exports(void);
ug_exports ug_dot_exports(void);
// Run the command JS set with setExitCommand (if any); called on the way out.
void ug_proc_run_exit_command(void);
void ug_sys_set_argv(int argc, char **argv);
JSValue ug_sys_argv(JSContext *ctx);

JSModuleDef *ug_native_module(JSContext *ctx, const char *name);

// At exit, after the loop ended: stop threads and drop callbacks never called.
void ug_relay_shutdown(JSContext *ctx);
int ug_relay_init(void);
void ug_dns_shutdown(JSContext *ctx);
// getaddrinfo on the DNS worker threads for C callers (as resolve() for JS):
// done(ctx, arg, gai_err, naddrs, addrs) runs on the loop thread, addrs in
// getaddrinfo's order as text (at most UG_MAX_ADDRS, duplicates dropped).
// NULL: out of memory.
#define UG_MAX_ADDRS 32
#define UG_ADDR_TEXT 46  // INET6_ADDRSTRLEN
typedef struct lookup ug_lookup;
typedef void ug_resolved(JSContext *ctx, void *arg, int gai_err, int naddrs,
                         const char (*addrs)[UG_ADDR_TEXT]);
ug_lookup *ug_resolve(const char *host, ug_resolved *done, void *arg);
// done is not called (the lookup itself runs to its end on its worker).
void ug_resolve_cancel(ug_lookup *l);
void ug_dot_shutdown(JSContext *ctx);
void ug_udp_shutdown(JSContext *ctx);
int ug_udp_start(void);  // 0 or -errno
void ug_socks_udp_shutdown(JSContext *ctx);
void ug_gate_shutdown(JSContext *ctx);
void ug_hbone_shutdown(JSContext *ctx);  // after the engine thread ended

// The compiled JS bundle (generated at build time into build/gen/bundle.c).
extern const uint8_t ugate_bundle[];
extern const uint32_t ugate_bundle_size;

#endif
