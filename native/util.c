// Small helpers every native file shares: stopping on a broken invariant,
// errors from errno, accept(2) without the errors of one aborted
// connection, reading bytes and options from JS values, and JS callbacks
// kept by id.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ugate.h"

void ug_fatal(const char *file, int line, const char *what) {
  fprintf(stderr, "ugate: internal error at %s:%d: %s\n", file, line, what);
  abort();
}

// ---- errno ------------------------------------------------------------------------
// Only the errno values a network daemon meets; others print as E<n>.
static const struct {
  int n;
  const char *name;
} errnames[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},
    {ENOSPC, "ENOSPC"},
    {EPIPE, "EPIPE"},
    {ENOSYS, "ENOSYS"},
    {ENOTSOCK, "ENOTSOCK"},
    {EMSGSIZE, "EMSGSIZE"},
    {ENOPROTOOPT, "ENOPROTOOPT"},
    {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {EAFNOSUPPORT, "EAFNOSUPPORT"},
    {EADDRINUSE, "EADDRINUSE"},
    {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
    {ENETDOWN, "ENETDOWN"},
    {ENETUNREACH, "ENETUNREACH"},
    {ENETRESET, "ENETRESET"},
    {ECONNABORTED, "ECONNABORTED"},
    {ECONNRESET, "ECONNRESET"},
    {ENOBUFS, "ENOBUFS"},
    {EISCONN, "EISCONN"},
    {ENOTCONN, "ENOTCONN"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {EHOSTDOWN, "EHOSTDOWN"},
    {EHOSTUNREACH, "EHOSTUNREACH"},
    {EALREADY, "EALREADY"},
    {EINPROGRESS, "EINPROGRESS"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {ELOOP, "ELOOP"},
    {EPROTO, "EPROTO"},
};

const char *ug_errno_name(int err, char spare[UG_ERRNO_NAME_MAX]) {
  for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
    if (errnames[i].n == err) return errnames[i].name;
  snprintf(spare, UG_ERRNO_NAME_MAX, "E%d", err);
  return spare;
}

JSValue ug_throw_errno(JSContext *ctx, const char *syscall, int err) {
  char spare[UG_ERRNO_NAME_MAX];
  const char *name = ug_errno_name(err, spare);
  JSValue e = JS_NewError(ctx);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, strerror(err), name);
  JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, msg));
  JS_SetPropertyStr(ctx, e, "code", JS_NewString(ctx, name));
  JS_SetPropertyStr(ctx, e, "errno", JS_NewInt32(ctx, err));
  JS_SetPropertyStr(ctx, e, "syscall", JS_NewString(ctx, syscall));
  return JS_Throw(ctx, e);
}

// ---- bytes and options ------------------------------------------------------------
int ug_get_bytes(JSContext *ctx, JSValueConst v, const uint8_t **p, size_t *len) {
  if (JS_IsArrayBuffer(v)) {
    *p = JS_GetArrayBuffer(ctx, len, v);
    return *p || *len == 0 ? 0 : -1;
  }
  if (JS_GetTypedArrayType(v) == JS_TYPED_ARRAY_UINT8) {
    *p = JS_GetUint8Array(ctx, len, v);
    return *p || *len == 0 ? 0 : -1;
  }
  JS_ThrowTypeError(ctx, "expected an ArrayBuffer or a Uint8Array");
  return -1;
}

// opts[key]: 1 = present (*v to be freed), 0 = absent, -1 = the getter threw.
static int opt_get(JSContext *ctx, JSValueConst opts, const char *key, JSValue *v) {
  *v = JS_GetPropertyStr(ctx, opts, key);
  if (JS_IsException(*v)) return -1;
  return !JS_IsUndefined(*v) && !JS_IsNull(*v);
}

int ug_opt_bool(JSContext *ctx, JSValueConst opts, const char *key, bool *out) {
  JSValue v;
  int rc = opt_get(ctx, opts, key, &v);
  if (rc > 0) *out = JS_ToBool(ctx, v);  // never throws: truthiness
  JS_FreeValue(ctx, v);
  return rc;
}

int ug_opt_number(JSContext *ctx, JSValueConst opts, const char *key, double *out) {
  JSValue v;
  int rc = opt_get(ctx, opts, key, &v);
  if (rc > 0 && JS_ToFloat64(ctx, out, v)) rc = -1;
  JS_FreeValue(ctx, v);
  return rc;
}

// ToInt32 of the number read, as `opts[key] | 0` would give in JS.
int ug_opt_int(JSContext *ctx, JSValueConst opts, const char *key, int *out) {
  double d;
  int rc = ug_opt_number(ctx, opts, key, &d);
  if (rc > 0) JS_ToInt32(ctx, out, JS_NewFloat64(ctx, d));  // a number: cannot throw
  return rc;
}

int ug_opt_string(JSContext *ctx, JSValueConst opts, const char *key, const char **out) {
  JSValue v;
  int rc = opt_get(ctx, opts, key, &v);
  if (rc > 0 && !(*out = JS_ToCString(ctx, v))) rc = -1;
  JS_FreeValue(ctx, v);
  return rc;
}

int ug_opt_bytes(JSContext *ctx, JSValueConst opts, const char *key, uint8_t **out, size_t *len) {
  JSValue v;
  const uint8_t *p = NULL;
  int rc = opt_get(ctx, opts, key, &v);
  if (rc > 0 && ug_get_bytes(ctx, v, &p, len)) rc = -1;
  if (rc > 0 && p && *len > 0) {  // copied before v goes: a getter's fresh buffer dies with it
    *out = malloc(*len);
    if (*out) memcpy(*out, p, *len);
    if (!*out) {
      JS_ThrowOutOfMemory(ctx);
      rc = -1;
    }
  }
  JS_FreeValue(ctx, v);
  return rc;
}

// ---- JS callbacks by id -----------------------------------------------------------
struct ug_cb_entry {
  ug_cb_entry *next;
  uint64_t id;
  JSValue cb;
};

static ug_cb_entry **cb_find(ug_cb_table *t, uint64_t id) {
  ug_cb_entry **pp = &t->head;
  while (*pp && (*pp)->id != id) pp = &(*pp)->next;
  return pp;
}

int ug_cb_add(JSContext *ctx, ug_cb_table *t, uint64_t id, JSValueConst cb) {
  ug_cb_entry *e = malloc(sizeof *e);
  if (!e) return -1;
  *e = (ug_cb_entry){.next = t->head, .id = id, .cb = JS_DupValue(ctx, cb)};
  t->head = e;
  return 0;
}

JSValue ug_cb_get(JSContext *ctx, ug_cb_table *t, uint64_t id) {
  ug_cb_entry *e = *cb_find(t, id);
  return e ? JS_DupValue(ctx, e->cb) : JS_UNDEFINED;
}

JSValue ug_cb_take(ug_cb_table *t, uint64_t id) {
  ug_cb_entry **pp = cb_find(t, id), *e = *pp;
  if (!e) return JS_UNDEFINED;
  JSValue cb = e->cb;
  *pp = e->next;
  free(e);
  return cb;
}

void ug_cb_clear(JSContext *ctx, ug_cb_table *t) {
  for (ug_cb_entry *e = t->head, *next; e; e = next) {
    next = e->next;
    JS_FreeValue(ctx, e->cb);
    free(e);
  }
  t->head = NULL;
}

// accept(2) errors of one aborted connection: skip it and take the next.
static bool accept_transient(int e) {
  switch (e) {
    case ECONNABORTED:
    case EINTR:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

int ug_accept(int lfd, struct sockaddr_storage *ss) {
  for (;;) {
    socklen_t sl = sizeof *ss;
    int fd = accept4(lfd, (struct sockaddr *)ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 || !accept_transient(errno)) return fd;
  }
}
