// DNS over TLS (RFC 7858) connections of the dns listener's tls:// resolvers,
// on the loop thread with C watches: the TLS records (tls.c's web PKI mode)
// and the 2-byte length framing (RFC 1035 4.2.2) stay in C; JS hands over
// each query and gets each answer (src/io/dns-tls.ts). DNS messages are the
// listener's own application data, not relayed payload.
//
//   dotOpen(fd, tlsWebConfig, host, cb) → id   fd: a connected TCP socket, ours from here
//   dotSend(id, message)   framed and queued; written once the handshake is done
//   dotClose(id)           close_notify (best effort) and close; no more callbacks
//   cb({ready, answers, closed}) after a wake that changed something: ready once
//     (the handshake is done), answers (an ArrayBuffer per message), closed
//     (why it ended, '' = the server closed it; the last call).
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ugate.h"
// After ugate.h (quickjs.h): declares ug_tls_web_config_from_js.
#include "tls.h"

// A frame is at most 2 + 65535 bytes: a full buffer always holds a whole one.
#define IN_CAP (2 + 65535)
// Queries not yet taken by TLS; more is refused (the listener caps its
// pending queries at 256, a query is ~50-300 bytes).
#define OUT_MAX (256 * 1024)

typedef struct dot_conn dot_conn;
struct dot_conn {
  dot_conn *next;
  int32_t id;
  int fd;
  tls_conn *tls;
  bool ready;
  JSValue cb;
  uint8_t *out;  // framed queries, out_off..out_len not yet written
  size_t out_off, out_len, out_cap;
  size_t in_len;
  uint8_t in[IN_CAP];
};

static dot_conn *conns;
static int32_t next_id;

static dot_conn *find(int32_t id) {
  dot_conn *c = conns;
  while (c && c->id != id) c = c->next;
  return c;
}

static void unlink_conn(dot_conn *c) {
  dot_conn **pp = &conns;
  while (*pp != c) pp = &(*pp)->next;
  *pp = c->next;
}

// Socket and TLS gone; the struct (and its callback) stay with the caller.
static void shut(JSContext *ctx, dot_conn *c, bool notify) {
  ug_loop_unwatch(ctx, c->fd);
  if (notify && c->ready) tls_close_notify(c->tls);  // once, never waited for
  tls_conn_free(c->tls);
  close(c->fd);
  unlink_conn(c);
}

static void conn_free(JSContext *ctx, dot_conn *c) {
  JS_FreeValue(ctx, c->cb);
  free(c->out);
  free(c);
}

// What one wake found, handed to JS at its end.
typedef struct {
  bool ready;
  JSValue answers;  // JS_UNDEFINED until the first
  uint32_t n;
  const char *closed;  // NULL while open
} wake_result;

static void add_answer(JSContext *ctx, wake_result *r, const uint8_t *p, size_t n) {
  if (JS_IsUndefined(r->answers)) r->answers = JS_NewArray(ctx);
  JS_SetPropertyUint32(ctx, r->answers, r->n++, JS_NewArrayBufferCopy(ctx, p, n));
}

// Whole frames off the front of in.
static void take_frames(JSContext *ctx, dot_conn *c, wake_result *r) {
  size_t off = 0;
  while (c->in_len - off >= 2) {
    size_t len = (size_t)c->in[off] << 8 | c->in[off + 1];
    if (c->in_len - off < 2 + len) break;
    add_answer(ctx, r, c->in + off + 2, len);
    off += 2 + len;
  }
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}

// Handshake, write, read until each would block. Returns the events to wait
// for, or 0 with r->closed set when the connection is over.
static int step(JSContext *ctx, dot_conn *c, wake_result *r) {
  if (!c->ready) {
    int h = tls_handshake(c->tls);
    if (h == TLS_WANT_READ) return EPOLLIN;
    if (h == TLS_WANT_WRITE) return EPOLLOUT;
    if (h != 0) {
      r->closed = tls_conn_error(c->tls);
      return 0;
    }
    c->ready = r->ready = true;
  }
  int events = EPOLLIN;
  while (c->out_off < c->out_len) {
    ssize_t n = tls_write(c->tls, c->out + c->out_off, c->out_len - c->out_off);
    if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
      events |= EPOLLOUT;
      break;
    }
    if (n < 0) {
      r->closed = tls_conn_error(c->tls);
      return 0;
    }
    c->out_off += (size_t)n;
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
  for (;;) {
    ssize_t n = tls_read(c->tls, c->in + c->in_len, IN_CAP - c->in_len);
    if (n == TLS_WANT_READ) break;
    if (n == TLS_WANT_WRITE) {
      events |= EPOLLOUT;
      break;
    }
    if (n == TLS_CLOSED) {
      r->closed = "";
      return 0;
    }
    if (n < 0) {
      r->closed = tls_conn_error(c->tls);
      return 0;
    }
    c->in_len += (size_t)n;
    take_frames(ctx, c, r);
  }
  return events;
}

static void on_io(JSContext *ctx, int fd, uint32_t events, void *arg) {
  (void)fd;
  (void)events;
  dot_conn *c = arg;
  wake_result r = {.answers = JS_UNDEFINED};
  int want = step(ctx, c, &r);
  char why[TLS_ERR_MAX];
  if (want == 0) {
    // The reason lives in the tls_conn that shut() frees.
    snprintf(why, sizeof why, "%s", r.closed);
    r.closed = why;
    shut(ctx, c, false);
  } else if (ug_loop_watch_c(ctx, c->fd, want, on_io, c) < 0) {
    snprintf(why, sizeof why, "epoll_ctl: %s", strerror(errno));
    r.closed = why;
    shut(ctx, c, false);
  }
  if (!r.ready && !r.n && !r.closed) return;
  JSValue o = JS_NewObject(ctx);
  if (r.ready) JS_SetPropertyStr(ctx, o, "ready", JS_NewBool(ctx, true));
  if (r.n) JS_SetPropertyStr(ctx, o, "answers", r.answers);
  if (r.closed) JS_SetPropertyStr(ctx, o, "closed", JS_NewString(ctx, r.closed));
  // The callback may dotClose or dotSend: c is not touched after it, unless closed here.
  JSValue cb = JS_DupValue(ctx, c->cb);
  if (r.closed) conn_free(ctx, c);
  ug_call(ctx, cb, 1, &o);
  JS_FreeValue(ctx, cb);
  JS_FreeValue(ctx, o);
}

static JSValue js_dot_open(UG_JS_PARAMS) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  if (fd < 0) return JS_ThrowRangeError(ctx, "dotOpen: bad fd %d", fd);
  tls_config *cfg = ug_tls_web_config_from_js(ctx, argv[1]);
  if (!cfg) return JS_EXCEPTION;
  if (!JS_IsFunction(ctx, argv[3]))
    return JS_ThrowTypeError(ctx, "dotOpen: callback is not a function");
  const char *host = JS_ToCString(ctx, argv[2]);
  if (!host) return JS_EXCEPTION;
  dot_conn *c = calloc(1, sizeof *c);
  if (c) c->tls = tls_conn_new_web(cfg, fd, host);
  JS_FreeCString(ctx, host);
  if (!c || !c->tls) {
    free(c);
    return JS_ThrowPlainError(ctx, "dotOpen: out of memory (or a bad host name)");
  }
  c->fd = fd;
  c->id = next_id = next_id == INT32_MAX ? 1 : next_id + 1;
  c->cb = JS_DupValue(ctx, argv[3]);
  c->next = conns;
  conns = c;
  // The ClientHello goes out at the first writable wake.
  if (ug_loop_watch_c(ctx, fd, EPOLLOUT, on_io, c) < 0) {
    int e = errno;
    unlink_conn(c);
    tls_conn_free(c->tls);
    conn_free(ctx, c);
    return ug_throw_errno(ctx, "epoll_ctl", e);
  }
  return JS_NewInt32(ctx, c->id);
}

static JSValue js_dot_send(UG_JS_PARAMS) {
  int32_t id;
  const uint8_t *p;
  size_t n;
  if (JS_ToInt32(ctx, &id, argv[0]) || ug_get_bytes(ctx, argv[1], &p, &n)) return JS_EXCEPTION;
  dot_conn *c = find(id);
  if (!c) return JS_ThrowPlainError(ctx, "dotSend: connection %d is closed", id);
  if (n == 0 || n > 65535) return JS_ThrowRangeError(ctx, "dotSend: a DNS message of %zu bytes", n);
  if (c->out_len + 2 + n > OUT_MAX)
    return JS_ThrowRangeError(ctx, "dotSend: %zu bytes already wait to be sent", c->out_len);
  if (c->out_len + 2 + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < c->out_len + 2 + n) cap *= 2;
    uint8_t *out = realloc(c->out, cap);
    if (!out) return JS_ThrowPlainError(ctx, "dotSend: out of memory");
    c->out = out;
    c->out_cap = cap;
  }
  c->out[c->out_len] = (uint8_t)(n >> 8);
  c->out[c->out_len + 1] = (uint8_t)n;
  memcpy(c->out + c->out_len + 2, p, n);
  c->out_len += 2 + n;
  // Written at the next writable wake (level-triggered: at once when there is room).
  if (c->ready && ug_loop_watch_c(ctx, c->fd, EPOLLIN | EPOLLOUT, on_io, c) < 0)
    return ug_throw_errno(ctx, "epoll_ctl", errno);
  return JS_UNDEFINED;
}

static JSValue js_dot_close(UG_JS_PARAMS) {
  int32_t id;
  if (JS_ToInt32(ctx, &id, argv[0])) return JS_EXCEPTION;
  dot_conn *c = find(id);
  if (c) {
    shut(ctx, c, true);
    conn_free(ctx, c);
  }
  return JS_UNDEFINED;
}

void ug_dot_shutdown(JSContext *ctx) {
  while (conns) {
    dot_conn *c = conns;
    shut(ctx, c, false);
    conn_free(ctx, c);
  }
}

static const JSCFunctionListEntry dot_funcs[] = {
    JS_CFUNC_DEF("dotOpen", 4, js_dot_open),
    JS_CFUNC_DEF("dotSend", 2, js_dot_send),
    JS_CFUNC_DEF("dotClose", 1, js_dot_close),
};

ug_exports ug_dot_exports(void) {
  return (ug_exports){dot_funcs, sizeof dot_funcs / sizeof dot_funcs[0]};
}
