// The event loop: one epoll set on the JS thread for fd watches, a timer
// heap, signals through signalfd, and an eventfd through which other threads
// (DNS workers, the relay) hand finished work back. QuickJS jobs (promise
// reactions) are drained after every callback, so async code never waits on
// the next I/O event.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ugate.h"

// epoll user data: the fd in the low 32 bits, a generation above it so an
// event for a closed fd cannot reach the callback of a newer fd of that number.
#define TAG_SIGNAL 0xffffffffu
#define TAG_WAKE 0xfffffffeu

typedef struct {
  JSValue cb;
  uint32_t gen;
  int events;
  bool active;
} watcher;

typedef struct {
  double deadline;
  uint64_t seq;  // ties keep insertion order
  JSValue cb;
  uint32_t gen;
  int heap_idx;  // -1 when not armed
} timer;

#define TIMER_SLOT_BITS 20
#define TIMER_SLOT_MAX (1u << TIMER_SLOT_BITS)

static struct {
  int ep, sigfd, wakefd;
  watcher *w;
  int w_cap, w_active;
  timer *t;  // slots
  uint32_t t_cap, t_free_head;
  uint32_t *t_free;  // stack of free slots
  uint32_t t_nfree;
  uint32_t *heap;  // slot numbers ordered by deadline
  int heap_len;
  uint64_t seq;
  JSValue sig_cb[65];
  sigset_t sigmask;
  int refs;
  bool exit_requested;
  int exit_code;
  pthread_mutex_t post_lock;
  ug_job *posted_head, *posted_tail;
  JSValue *rejections;  // unhandled promise rejections seen since the last drain
  int rej_len, rej_cap;
} L = {.ep = -1, .sigfd = -1, .wakefd = -1, .post_lock = PTHREAD_MUTEX_INITIALIZER};

double ug_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void ug_loop_request_exit(int code) {
  if (!L.exit_requested) L.exit_code = code;
  L.exit_requested = true;
}

void ug_loop_ref(void) {
  L.refs++;
}
void ug_loop_unref(void) {
  L.refs--;
}

static void report_exception(JSContext *ctx, const char *what) {
  JSValue exc = JS_GetException(ctx);
  if (JS_IsUncatchableError(exc) && L.exit_requested) {  // exit() unwinding
    JS_FreeValue(ctx, exc);
    return;
  }
  const char *msg = JS_ToCString(ctx, exc);
  JSValue stack = JS_IsObject(exc) ? JS_GetPropertyStr(ctx, exc, "stack") : JS_UNDEFINED;
  const char *st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
  fprintf(stderr, "ugate: fatal: %s: %s\n%s", what, msg ? msg : "?", st ? st : "");
  if (msg) JS_FreeCString(ctx, msg);
  if (st) JS_FreeCString(ctx, st);
  JS_FreeValue(ctx, stack);
  JS_FreeValue(ctx, exc);
  // A bug left state we cannot trust: stop (procd respawns the service).
  ug_loop_request_exit(70);
}

void ug_call(JSContext *ctx, JSValueConst fn, int argc, JSValueConst *argv) {
  JSValue r = JS_Call(ctx, fn, JS_UNDEFINED, argc, argv);
  if (JS_IsException(r)) report_exception(ctx, "uncaught exception");
  JS_FreeValue(ctx, r);
}

static void drain_jobs(JSContext *ctx) {
  JSRuntime *rt = JS_GetRuntime(ctx);
  for (;;) {
    JSContext *jctx;
    int r = JS_ExecutePendingJob(rt, &jctx);
    if (r == 0) break;
    if (r < 0) report_exception(jctx, "uncaught exception in a job");
    if (L.exit_requested) break;
  }
  if (L.rej_len && !L.exit_requested) {
    const char *msg = JS_ToCString(ctx, L.rejections[0]);
    JSValue stack = JS_IsObject(L.rejections[0]) ? JS_GetPropertyStr(ctx, L.rejections[0], "stack")
                                                 : JS_UNDEFINED;
    const char *st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
    fprintf(stderr, "ugate: fatal: unhandled promise rejection: %s\n%s", msg ? msg : "?",
            st ? st : "");
    if (msg) JS_FreeCString(ctx, msg);
    if (st) JS_FreeCString(ctx, st);
    JS_FreeValue(ctx, stack);
    ug_loop_request_exit(70);
  }
  for (int i = 0; i < L.rej_len; i++) JS_FreeValue(ctx, L.rejections[i]);
  L.rej_len = 0;
}

// Rejections are judged after the job queue is drained, so a handler
// attached in a later microtask still counts.
static void track_rejection(JSContext *ctx, JSValueConst promise, JSValueConst reason,
                            bool is_handled, void *opaque) {
  (void)promise;
  (void)opaque;
  if (is_handled) {
    // Handled late: forget the most recent matching entry (same reason).
    for (int i = L.rej_len - 1; i >= 0; i--) {
      if (JS_IsStrictEqual(ctx, L.rejections[i], reason)) {
        JS_FreeValue(ctx, L.rejections[i]);
        L.rejections[i] = L.rejections[--L.rej_len];
        return;
      }
    }
    return;
  }
  if (L.rej_len == L.rej_cap) {
    L.rej_cap = L.rej_cap ? L.rej_cap * 2 : 8;
    L.rejections = realloc(L.rejections, L.rej_cap * sizeof *L.rejections);
    UG_CHECK(L.rejections);
  }
  L.rejections[L.rej_len++] = JS_DupValue(ctx, reason);
}

// ---- timers: a binary min-heap of slot numbers ------------------------------
static bool t_less(uint32_t a, uint32_t b) {
  timer *x = &L.t[a], *y = &L.t[b];
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}
static void heap_set(int i, uint32_t slot) {
  L.heap[i] = slot;
  L.t[slot].heap_idx = i;
}
static void heap_up(int i) {
  uint32_t s = L.heap[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!t_less(s, L.heap[p])) break;
    heap_set(i, L.heap[p]);
    i = p;
  }
  heap_set(i, s);
}
static void heap_down(int i) {
  uint32_t s = L.heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= L.heap_len) break;
    if (c + 1 < L.heap_len && t_less(L.heap[c + 1], L.heap[c])) c++;
    if (!t_less(L.heap[c], s)) break;
    heap_set(i, L.heap[c]);
    i = c;
  }
  heap_set(i, s);
}
static void heap_remove(int i) {
  uint32_t gone = L.heap[i];
  L.t[gone].heap_idx = -1;
  L.heap_len--;
  if (i == L.heap_len) return;
  heap_set(i, L.heap[L.heap_len]);
  heap_up(i);
  heap_down(L.t[L.heap[i]].heap_idx);
}

static void timer_release(JSContext *ctx, uint32_t slot) {
  timer *t = &L.t[slot];
  JS_FreeValue(ctx, t->cb);
  t->cb = JS_UNDEFINED;
  t->gen++;
  L.t_free[L.t_nfree++] = slot;
}

static JSValue js_set_timeout(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  double ms;
  if (!JS_IsFunction(ctx, argv[0]))
    return JS_ThrowTypeError(ctx, "setTimeout: callback is not a function");
  if (JS_ToFloat64(ctx, &ms, argv[1])) return JS_EXCEPTION;
  if (!(ms >= 0)) ms = 0;
  if (L.t_nfree == 0) {
    if (L.t_cap == TIMER_SLOT_MAX) return JS_ThrowRangeError(ctx, "setTimeout: too many timers");
    uint32_t ncap = L.t_cap ? L.t_cap * 2 : 64;
    L.t = realloc(L.t, ncap * sizeof *L.t);
    L.t_free = realloc(L.t_free, ncap * sizeof *L.t_free);
    L.heap = realloc(L.heap, ncap * sizeof *L.heap);
    UG_CHECK(L.t && L.t_free && L.heap);
    for (uint32_t s = ncap; s-- > L.t_cap;) {
      L.t[s] = (timer){.cb = JS_UNDEFINED, .heap_idx = -1};
      L.t_free[L.t_nfree++] = s;
    }
    L.t_cap = ncap;
  }
  uint32_t slot = L.t_free[--L.t_nfree];
  timer *t = &L.t[slot];
  t->deadline = ug_now_ms() + ms;
  t->seq = L.seq++;
  t->cb = JS_DupValue(ctx, argv[0]);
  L.heap_len++;
  heap_set(L.heap_len - 1, slot);
  heap_up(L.heap_len - 1);
  return JS_NewFloat64(ctx, (double)t->gen * TIMER_SLOT_MAX + slot);
}

static JSValue js_clear_timeout(JSContext *ctx, JSValueConst this_val, int argc,
                                JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0]) || !(id >= 0)) return JS_UNDEFINED;
  uint64_t v = (uint64_t)id;
  uint32_t slot = v % TIMER_SLOT_MAX, gen = (uint32_t)(v / TIMER_SLOT_MAX);
  if (slot >= L.t_cap || L.t[slot].gen != gen || L.t[slot].heap_idx < 0) return JS_UNDEFINED;
  heap_remove(L.t[slot].heap_idx);
  timer_release(ctx, slot);
  return JS_UNDEFINED;
}

static void run_timers(JSContext *ctx) {
  double now = ug_now_ms();
  while (L.heap_len && L.t[L.heap[0]].deadline <= now && !L.exit_requested) {
    uint32_t slot = L.heap[0];
    heap_remove(0);
    JSValue cb = L.t[slot].cb;
    L.t[slot].cb = JS_UNDEFINED;
    timer_release(ctx, slot);  // before the call: the callback may set new timers
    ug_call(ctx, cb, 0, NULL);
    JS_FreeValue(ctx, cb);
    drain_jobs(ctx);
  }
}

// ---- fd watches -------------------------------------------------------------
static void unwatch(JSContext *ctx, int fd, bool del) {
  if (fd < 0 || fd >= L.w_cap || !L.w[fd].active) return;
  if (del) epoll_ctl(L.ep, EPOLL_CTL_DEL, fd, NULL);  // fails harmlessly if fd is gone
  JS_FreeValue(ctx, L.w[fd].cb);
  L.w[fd].cb = JS_UNDEFINED;
  L.w[fd].active = false;
  L.w_active--;
}

void ug_loop_forget_fd(JSContext *ctx, int fd) {
  unwatch(ctx, fd, true);
}

static JSValue js_watch(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  int fd, events;
  if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToInt32(ctx, &events, argv[1])) return JS_EXCEPTION;
  if (fd < 0) return JS_ThrowRangeError(ctx, "watch: bad fd %d", fd);
  if (events == 0) {
    unwatch(ctx, fd, true);
    return JS_UNDEFINED;
  }
  if (!JS_IsFunction(ctx, argv[2]))
    return JS_ThrowTypeError(ctx, "watch: callback is not a function");
  if (fd >= L.w_cap) {
    int ncap = L.w_cap ? L.w_cap : 64;
    while (ncap <= fd) ncap *= 2;
    L.w = realloc(L.w, ncap * sizeof *L.w);
    UG_CHECK(L.w);
    for (int i = L.w_cap; i < ncap; i++) L.w[i] = (watcher){.cb = JS_UNDEFINED};
    L.w_cap = ncap;
  }
  watcher *w = &L.w[fd];
  int ev = events & (EPOLLIN | EPOLLOUT);
  bool was = w->active;
  if (!was) w->gen++;
  struct epoll_event e = {.events = ev, .data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd};
  if (epoll_ctl(L.ep, was ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e) < 0)
    return ug_throw_errno(ctx, "epoll_ctl", errno);
  JS_FreeValue(ctx, w->cb);
  w->cb = JS_DupValue(ctx, argv[2]);
  w->events = ev;
  if (!was) L.w_active++;
  w->active = true;
  return JS_UNDEFINED;
}

static JSValue js_unwatch(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  unwatch(ctx, fd, true);
  return JS_UNDEFINED;
}

static void dispatch_fd(JSContext *ctx, uint64_t tag, uint32_t events) {
  int fd = (int)(uint32_t)tag;
  uint32_t gen = (uint32_t)(tag >> 32);
  if (fd >= L.w_cap || !L.w[fd].active || L.w[fd].gen != gen) return;  // stale event
  JSValue cb = JS_DupValue(ctx, L.w[fd].cb);  // the callback may unwatch itself
  JSValue arg = JS_NewInt32(ctx, (int32_t)events);
  ug_call(ctx, cb, 1, &arg);
  JS_FreeValue(ctx, cb);
}

// ---- signals ----------------------------------------------------------------
static JSValue js_on_signal(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  int sig;
  if (JS_ToInt32(ctx, &sig, argv[0])) return JS_EXCEPTION;
  if (sig < 1 || sig > 64) return JS_ThrowRangeError(ctx, "onSignal: bad signal %d", sig);
  JS_FreeValue(ctx, L.sig_cb[sig]);
  L.sig_cb[sig] = JS_UNDEFINED;
  if (JS_IsFunction(ctx, argv[1])) {
    L.sig_cb[sig] = JS_DupValue(ctx, argv[1]);
    sigaddset(&L.sigmask, sig);
    sigprocmask(SIG_BLOCK, &L.sigmask, NULL);
  } else if (sig != SIGINT && sig != SIGTERM &&
             sig != SIGHUP) {  // those three stay on the signalfd
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigdelset(&L.sigmask, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
  }
  if (signalfd(L.sigfd, &L.sigmask, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
    return ug_throw_errno(ctx, "signalfd", errno);
  return JS_UNDEFINED;
}

static void dispatch_signals(JSContext *ctx) {
  struct signalfd_siginfo si;
  while (read(L.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo < 65 && !JS_IsFunction(ctx, L.sig_cb[si.ssi_signo])) {
      ug_loop_request_exit(128 +
                           (int)si.ssi_signo);  // no handler: what the default action would do
      return;
    }
    if (si.ssi_signo < 65) {
      JSValue cb = JS_DupValue(ctx, L.sig_cb[si.ssi_signo]);
      ug_call(ctx, cb, 0, NULL);
      JS_FreeValue(ctx, cb);
      drain_jobs(ctx);
    }
  }
}

// ---- work handed back by other threads ---------------------------------------
void ug_loop_post(ug_job *job) {
  job->next = NULL;
  pthread_mutex_lock(&L.post_lock);
  if (L.posted_tail)
    L.posted_tail->next = job;
  else
    L.posted_head = job;
  L.posted_tail = job;
  pthread_mutex_unlock(&L.post_lock);
  uint64_t one = 1;
  ssize_t n = write(L.wakefd, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake
}

static void dispatch_posted(JSContext *ctx) {
  uint64_t cnt;
  ssize_t n = read(L.wakefd, &cnt, sizeof cnt);
  (void)n;
  pthread_mutex_lock(&L.post_lock);
  ug_job *j = L.posted_head;
  L.posted_head = L.posted_tail = NULL;
  pthread_mutex_unlock(&L.post_lock);
  while (j) {
    ug_job *next = j->next;
    j->complete(ctx, j);  // frees j
    drain_jobs(ctx);
    j = next;
  }
}

// ---- the loop ---------------------------------------------------------------
static JSValue js_now(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  (void)argv;
  return JS_NewFloat64(ctx, ug_now_ms());
}

int ug_loop_init(JSContext *ctx) {
  for (int i = 0; i < 65; i++) L.sig_cb[i] = JS_UNDEFINED;
  // Blocked before any thread starts, so every thread inherits the block and
  // these signals reach only the signalfd (a thread without the block, e.g. a
  // sanitizer's, would otherwise take the default action: death).
  sigemptyset(&L.sigmask);
  sigaddset(&L.sigmask, SIGINT);
  sigaddset(&L.sigmask, SIGTERM);
  sigaddset(&L.sigmask, SIGHUP);
  sigprocmask(SIG_BLOCK, &L.sigmask, NULL);
  L.ep = epoll_create1(EPOLL_CLOEXEC);
  L.sigfd = signalfd(-1, &L.sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  L.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (L.ep < 0 || L.sigfd < 0 || L.wakefd < 0) return -1;
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_SIGNAL};
  if (epoll_ctl(L.ep, EPOLL_CTL_ADD, L.sigfd, &e) < 0) return -1;
  e.data.u64 = TAG_WAKE;
  if (epoll_ctl(L.ep, EPOLL_CTL_ADD, L.wakefd, &e) < 0) return -1;
  JS_SetHostPromiseRejectionTracker(JS_GetRuntime(ctx), track_rejection, NULL);
  return 0;
}

int ug_loop_run(JSContext *ctx) {
  struct epoll_event evs[64];
  drain_jobs(ctx);
  while (!L.exit_requested) {
    bool alive = L.w_active > 0 || L.heap_len > 0 || L.refs > 0;
    if (!alive) break;
    int timeout = -1;
    if (L.heap_len) {
      double d = L.t[L.heap[0]].deadline - ug_now_ms();
      timeout = d <= 0 ? 0 : (int)(d + 0.999);
    }
    int n = epoll_wait(L.ep, evs, 64, timeout);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "ugate: fatal: epoll_wait: %s\n", strerror(errno));
      ug_loop_request_exit(70);
      break;
    }
    for (int i = 0; i < n && !L.exit_requested; i++) {
      if (evs[i].data.u64 == TAG_SIGNAL)
        dispatch_signals(ctx);
      else if (evs[i].data.u64 == TAG_WAKE)
        dispatch_posted(ctx);
      else {
        dispatch_fd(ctx, evs[i].data.u64, evs[i].events);
        drain_jobs(ctx);
      }
    }
    run_timers(ctx);
  }
  return L.exit_code;
}

void ug_loop_free(JSContext *ctx) {
  for (int fd = 0; fd < L.w_cap; fd++) unwatch(ctx, fd, false);
  for (int i = 0; i < L.heap_len; i++) {
    JS_FreeValue(ctx, L.t[L.heap[i]].cb);
    L.t[L.heap[i]].cb = JS_UNDEFINED;
  }
  L.heap_len = 0;
  for (int i = 0; i < 65; i++) {
    JS_FreeValue(ctx, L.sig_cb[i]);
    L.sig_cb[i] = JS_UNDEFINED;
  }
  for (int i = 0; i < L.rej_len; i++) JS_FreeValue(ctx, L.rejections[i]);
  free(L.rejections);
  free(L.w);
  free(L.t);
  free(L.t_free);
  free(L.heap);
  L.w = NULL;
  L.t = NULL;
  L.t_free = NULL;
  L.heap = NULL;
  close(L.ep);
  close(L.sigfd);
  close(L.wakefd);
}

static JSValue js_exit(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  int code;
  if (JS_ToInt32(ctx, &code, argv[0])) code = 1;
  ug_loop_request_exit(code);
  // Unwind the JS stack at once: nothing after exit() runs.
  JSValue err = JS_NewError(ctx);
  JS_SetUncatchableError(ctx, err);
  return JS_Throw(ctx, err);
}

static const JSCFunctionListEntry loop_funcs[] = {
    JS_CFUNC_DEF("setTimeout", 2, js_set_timeout),
    JS_CFUNC_DEF("clearTimeout", 1, js_clear_timeout),
    JS_CFUNC_DEF("watch", 3, js_watch),
    JS_CFUNC_DEF("unwatch", 1, js_unwatch),
    JS_CFUNC_DEF("onSignal", 2, js_on_signal),
    JS_CFUNC_DEF("now", 0, js_now),
    JS_CFUNC_DEF("exit", 1, js_exit),
    JS_PROP_INT32_DEF("EV_READ", EPOLLIN, 0),
    JS_PROP_INT32_DEF("EV_WRITE", EPOLLOUT, 0),
    JS_PROP_INT32_DEF("EV_ERR", EPOLLERR, 0),
    JS_PROP_INT32_DEF("EV_HUP", EPOLLHUP, 0),
    JS_PROP_INT32_DEF("SIGINT", SIGINT, 0),
    JS_PROP_INT32_DEF("SIGTERM", SIGTERM, 0),
    JS_PROP_INT32_DEF("SIGHUP", SIGHUP, 0),
};

ug_exports ug_loop_exports(void) {
  return (ug_exports){loop_funcs, sizeof loop_funcs / sizeof loop_funcs[0]};
}
