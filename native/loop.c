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
  ug_watch_fn *cfn;  // a C watch (ug_loop_watch_c) instead of cb
  void *carg;
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
  ug_job_queue posted;
  JSValue *rejections;  // unhandled promise rejections seen since the last drain
  int rej_len, rej_cap;
} loop = {.ep = -1, .sigfd = -1, .wakefd = -1, .post_lock = PTHREAD_MUTEX_INITIALIZER};

double ug_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void ug_loop_request_exit(int code) {
  if (!loop.exit_requested) loop.exit_code = code;
  loop.exit_requested = true;
}

void ug_loop_ref(void) {
  loop.refs++;
}
void ug_loop_unref(void) {
  loop.refs--;
}

static void report_exception(JSContext *ctx, const char *what) {
  JSValue exc = JS_GetException(ctx);
  if (JS_IsUncatchableError(exc) && loop.exit_requested) {  // exit() unwinding
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

JSValue ug_call_value(JSContext *ctx, JSValueConst fn, int argc, JSValueConst *argv) {
  JSValue r = JS_Call(ctx, fn, JS_UNDEFINED, argc, argv);
  if (!JS_IsException(r)) return r;
  report_exception(ctx, "uncaught exception");
  return JS_UNDEFINED;
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
    if (loop.exit_requested) break;
  }
  if (loop.rej_len && !loop.exit_requested) {
    const char *msg = JS_ToCString(ctx, loop.rejections[0]);
    JSValue stack = JS_IsObject(loop.rejections[0])
                        ? JS_GetPropertyStr(ctx, loop.rejections[0], "stack")
                        : JS_UNDEFINED;
    const char *st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
    fprintf(stderr, "ugate: fatal: unhandled promise rejection: %s\n%s", msg ? msg : "?",
            st ? st : "");
    if (msg) JS_FreeCString(ctx, msg);
    if (st) JS_FreeCString(ctx, st);
    JS_FreeValue(ctx, stack);
    ug_loop_request_exit(70);
  }
  for (int i = 0; i < loop.rej_len; i++) JS_FreeValue(ctx, loop.rejections[i]);
  loop.rej_len = 0;
}

// Rejections are judged after the job queue is drained, so a handler
// attached in a later microtask still counts.
static void track_rejection(JSContext *ctx, JSValueConst promise, JSValueConst reason,
                            bool is_handled, void *opaque) {
  (void)promise;
  (void)opaque;
  if (is_handled) {
    // Handled late: forget the most recent matching entry (same reason).
    for (int i = loop.rej_len - 1; i >= 0; i--) {
      if (JS_IsStrictEqual(ctx, loop.rejections[i], reason)) {
        JS_FreeValue(ctx, loop.rejections[i]);
        loop.rejections[i] = loop.rejections[--loop.rej_len];
        return;
      }
    }
    return;
  }
  if (loop.rej_len == loop.rej_cap) {
    loop.rej_cap = loop.rej_cap ? loop.rej_cap * 2 : 8;
    loop.rejections = realloc(loop.rejections, loop.rej_cap * sizeof *loop.rejections);
    UG_CHECK(loop.rejections);
  }
  loop.rejections[loop.rej_len++] = JS_DupValue(ctx, reason);
}

// ---- timers: a binary min-heap of slot numbers ------------------------------
static bool t_less(uint32_t a, uint32_t b) {
  timer *x = &loop.t[a], *y = &loop.t[b];
  return x->deadline < y->deadline || (x->deadline == y->deadline && x->seq < y->seq);
}
static void heap_set(int i, uint32_t slot) {
  loop.heap[i] = slot;
  loop.t[slot].heap_idx = i;
}
static void heap_up(int i) {
  uint32_t s = loop.heap[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!t_less(s, loop.heap[p])) break;
    heap_set(i, loop.heap[p]);
    i = p;
  }
  heap_set(i, s);
}
static void heap_down(int i) {
  uint32_t s = loop.heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= loop.heap_len) break;
    if (c + 1 < loop.heap_len && t_less(loop.heap[c + 1], loop.heap[c])) c++;
    if (!t_less(loop.heap[c], s)) break;
    heap_set(i, loop.heap[c]);
    i = c;
  }
  heap_set(i, s);
}
static void heap_remove(int i) {
  uint32_t gone = loop.heap[i];
  loop.t[gone].heap_idx = -1;
  loop.heap_len--;
  if (i == loop.heap_len) return;
  heap_set(i, loop.heap[loop.heap_len]);
  heap_up(i);
  heap_down(loop.t[loop.heap[i]].heap_idx);
}

static void timer_release(JSContext *ctx, uint32_t slot) {
  timer *t = &loop.t[slot];
  JS_FreeValue(ctx, t->cb);
  t->cb = JS_UNDEFINED;
  t->gen++;
  loop.t_free[loop.t_nfree++] = slot;
}

static JSValue js_set_timeout(UG_JS_PARAMS) {
  double ms;
  if (!JS_IsFunction(ctx, argv[0]))
    return JS_ThrowTypeError(ctx, "setTimeout: callback is not a function");
  if (JS_ToFloat64(ctx, &ms, argv[1])) return JS_EXCEPTION;
  if (!(ms >= 0)) ms = 0;
  if (loop.t_nfree == 0) {
    if (loop.t_cap == TIMER_SLOT_MAX) return JS_ThrowRangeError(ctx, "setTimeout: too many timers");
    uint32_t ncap = loop.t_cap ? loop.t_cap * 2 : 64;
    loop.t = realloc(loop.t, ncap * sizeof *loop.t);
    loop.t_free = realloc(loop.t_free, ncap * sizeof *loop.t_free);
    loop.heap = realloc(loop.heap, ncap * sizeof *loop.heap);
    UG_CHECK(loop.t && loop.t_free && loop.heap);
    for (uint32_t s = ncap; s-- > loop.t_cap;) {
      loop.t[s] = (timer){.cb = JS_UNDEFINED, .heap_idx = -1};
      loop.t_free[loop.t_nfree++] = s;
    }
    loop.t_cap = ncap;
  }
  uint32_t slot = loop.t_free[--loop.t_nfree];
  timer *t = &loop.t[slot];
  t->deadline = ug_now_ms() + ms;
  t->seq = loop.seq++;
  t->cb = JS_DupValue(ctx, argv[0]);
  loop.heap_len++;
  heap_set(loop.heap_len - 1, slot);
  heap_up(loop.heap_len - 1);
  return JS_NewFloat64(ctx, (double)t->gen * TIMER_SLOT_MAX + slot);
}

static JSValue js_clear_timeout(UG_JS_PARAMS) {
  double id;
  if (JS_ToFloat64(ctx, &id, argv[0]) || !(id >= 0)) return JS_UNDEFINED;
  uint64_t v = (uint64_t)id;
  uint32_t slot = v % TIMER_SLOT_MAX, gen = (uint32_t)(v / TIMER_SLOT_MAX);
  if (slot >= loop.t_cap || loop.t[slot].gen != gen || loop.t[slot].heap_idx < 0)
    return JS_UNDEFINED;
  heap_remove(loop.t[slot].heap_idx);
  timer_release(ctx, slot);
  return JS_UNDEFINED;
}

static void run_timers(JSContext *ctx) {
  double now = ug_now_ms();
  while (loop.heap_len && loop.t[loop.heap[0]].deadline <= now && !loop.exit_requested) {
    uint32_t slot = loop.heap[0];
    heap_remove(0);
    JSValue cb = loop.t[slot].cb;
    loop.t[slot].cb = JS_UNDEFINED;
    timer_release(ctx, slot);  // before the call: the callback may set new timers
    ug_call(ctx, cb, 0, NULL);
    JS_FreeValue(ctx, cb);
    drain_jobs(ctx);
  }
}

// ---- fd watches -------------------------------------------------------------
static void unwatch(JSContext *ctx, int fd, bool del) {
  if (fd < 0 || fd >= loop.w_cap || !loop.w[fd].active) return;
  if (del) epoll_ctl(loop.ep, EPOLL_CTL_DEL, fd, NULL);  // fails harmlessly if fd is gone
  JS_FreeValue(ctx, loop.w[fd].cb);
  loop.w[fd].cb = JS_UNDEFINED;
  loop.w[fd].cfn = NULL;
  loop.w[fd].active = false;
  loop.w_active--;
}

void ug_loop_forget_fd(JSContext *ctx, int fd) {
  unwatch(ctx, fd, true);
}

// The watcher of fd, growing the table; its epoll registration is set by the caller.
static watcher *watcher_for(int fd) {
  if (fd >= loop.w_cap) {
    int ncap = loop.w_cap ? loop.w_cap : 64;
    while (ncap <= fd) ncap *= 2;
    loop.w = realloc(loop.w, ncap * sizeof *loop.w);
    UG_CHECK(loop.w);
    for (int i = loop.w_cap; i < ncap; i++) loop.w[i] = (watcher){.cb = JS_UNDEFINED};
    loop.w_cap = ncap;
  }
  return &loop.w[fd];
}

// Register (or change) fd's epoll events; -1 with errno when epoll_ctl fails.
// A one-shot watch that fired stays registered, disabled (no EPOLL_CTL_DEL
// is made for it: close removes it): watching that fd again re-arms it.
#define WATCH_EVENTS ((int)(EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLONESHOT))
// `fired`: the caller knows fd holds such a registration (ug_loop_rearm_c).
static int watch_events(watcher *w, int fd, int events, bool fired) {
  int ev = events & WATCH_EVENTS;
  bool was = w->active;
  if (!was) w->gen++;
  struct epoll_event e = {.events = ev, .data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd};
  bool mod = was || fired;
  if (epoll_ctl(loop.ep, mod ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e) < 0 &&
      (mod || errno != EEXIST || epoll_ctl(loop.ep, EPOLL_CTL_MOD, fd, &e) < 0))
    return -1;
  w->events = ev;
  if (!was) loop.w_active++;
  w->active = true;
  return 0;
}

static int watch_c(JSContext *ctx, int fd, int events, ug_watch_fn *fn, void *arg, bool fired) {
  watcher *w = watcher_for(fd);
  if (w->events == (events & WATCH_EVENTS) && w->active && w->cfn == fn && w->carg == arg)
    return 0;  // unchanged: no epoll_ctl
  if (watch_events(w, fd, events, fired) < 0) return -1;
  JS_FreeValue(ctx, w->cb);
  w->cb = JS_UNDEFINED;
  w->cfn = fn;
  w->carg = arg;
  return 0;
}

int ug_loop_watch_c(JSContext *ctx, int fd, int events, ug_watch_fn *fn, void *arg) {
  return watch_c(ctx, fd, events, fn, arg, false);
}

int ug_loop_rearm_c(JSContext *ctx, int fd, int events, ug_watch_fn *fn, void *arg) {
  return watch_c(ctx, fd, events, fn, arg, true);
}

void ug_loop_unwatch(JSContext *ctx, int fd) {
  unwatch(ctx, fd, true);
}

void ug_loop_drop(JSContext *ctx, int fd) {
  unwatch(ctx, fd, false);
}

static JSValue js_watch(UG_JS_PARAMS) {
  int fd, events;
  if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToInt32(ctx, &events, argv[1])) return JS_EXCEPTION;
  if (fd < 0) return JS_ThrowRangeError(ctx, "watch: bad fd %d", fd);
  if (events == 0) {
    unwatch(ctx, fd, true);
    return JS_UNDEFINED;
  }
  if (!JS_IsFunction(ctx, argv[2]))
    return JS_ThrowTypeError(ctx, "watch: callback is not a function");
  watcher *w = watcher_for(fd);
  if (watch_events(w, fd, events & (EPOLLIN | EPOLLOUT), false) < 0)
    return ug_throw_errno(ctx, "epoll_ctl", errno);
  JS_FreeValue(ctx, w->cb);
  w->cb = JS_DupValue(ctx, argv[2]);
  w->cfn = NULL;
  return JS_UNDEFINED;
}

static JSValue js_unwatch(UG_JS_PARAMS) {
  int fd;
  if (JS_ToInt32(ctx, &fd, argv[0])) return JS_EXCEPTION;
  unwatch(ctx, fd, true);
  return JS_UNDEFINED;
}

static void dispatch_fd(JSContext *ctx, uint64_t tag, uint32_t events) {
  int fd = (int)(uint32_t)tag;
  uint32_t gen = (uint32_t)(tag >> 32);
  if (fd >= loop.w_cap || !loop.w[fd].active || loop.w[fd].gen != gen) return;  // stale event
  if (loop.w[fd].cfn) {
    ug_watch_fn *fn = loop.w[fd].cfn;
    void *arg = loop.w[fd].carg;
    if (loop.w[fd].events & EPOLLONESHOT) unwatch(ctx, fd, false);  // disabled by the kernel
    fn(ctx, fd, events, arg);
    return;
  }
  JSValue cb = JS_DupValue(ctx, loop.w[fd].cb);  // the callback may unwatch itself
  JSValue arg = JS_NewInt32(ctx, (int32_t)events);
  ug_call(ctx, cb, 1, &arg);
  JS_FreeValue(ctx, cb);
}

// ---- signals ----------------------------------------------------------------
static JSValue js_on_signal(UG_JS_PARAMS) {
  int sig;
  if (JS_ToInt32(ctx, &sig, argv[0])) return JS_EXCEPTION;
  if (sig < 1 || sig > 64) return JS_ThrowRangeError(ctx, "onSignal: bad signal %d", sig);
  JS_FreeValue(ctx, loop.sig_cb[sig]);
  loop.sig_cb[sig] = JS_UNDEFINED;
  if (JS_IsFunction(ctx, argv[1])) {
    loop.sig_cb[sig] = JS_DupValue(ctx, argv[1]);
    sigaddset(&loop.sigmask, sig);
    sigprocmask(SIG_BLOCK, &loop.sigmask, NULL);
  } else if (sig != SIGINT && sig != SIGTERM &&
             sig != SIGHUP) {  // those three stay on the signalfd
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigdelset(&loop.sigmask, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
  }
  if (signalfd(loop.sigfd, &loop.sigmask, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
    return ug_throw_errno(ctx, "signalfd", errno);
  return JS_UNDEFINED;
}

static void dispatch_signals(JSContext *ctx) {
  struct signalfd_siginfo si;
  while (read(loop.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo < 65 && !JS_IsFunction(ctx, loop.sig_cb[si.ssi_signo])) {
      ug_loop_request_exit(128 +
                           (int)si.ssi_signo);  // no handler: what the default action would do
      return;
    }
    if (si.ssi_signo < 65) {
      JSValue cb = JS_DupValue(ctx, loop.sig_cb[si.ssi_signo]);
      ug_call(ctx, cb, 0, NULL);
      JS_FreeValue(ctx, cb);
      drain_jobs(ctx);
    }
  }
}

// ---- work handed back by other threads ---------------------------------------
void ug_job_queue_push(ug_job_queue *q, ug_job *job) {
  job->next = NULL;
  if (q->tail)
    q->tail->next = job;
  else
    q->head = job;
  q->tail = job;
}

ug_job *ug_job_queue_pop(ug_job_queue *q) {
  ug_job *job = q->head;
  if (job) q->head = job->next;
  if (!q->head) q->tail = NULL;
  return job;
}

// dispatch_posted reads the eventfd before it takes the queue, so only the
// post that finds the queue empty needs to wake the loop: one write per batch.
void ug_loop_post(ug_job *job) {
  pthread_mutex_lock(&loop.post_lock);
  bool first = loop.posted.head == NULL;
  ug_job_queue_push(&loop.posted, job);
  pthread_mutex_unlock(&loop.post_lock);
  if (!first) return;
  uint64_t one = 1;
  ssize_t n = write(loop.wakefd, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake
}

static void dispatch_posted(JSContext *ctx) {
  uint64_t wakeups;
  ssize_t n = read(loop.wakefd, &wakeups, sizeof wakeups);
  (void)n;
  pthread_mutex_lock(&loop.post_lock);
  ug_job *j = loop.posted.head;  // the whole chain: jobs posted meanwhile wait for the next wake
  loop.posted = (ug_job_queue){0};
  pthread_mutex_unlock(&loop.post_lock);
  while (j) {
    ug_job *next = j->next;
    j->complete(ctx, j);  // frees j
    drain_jobs(ctx);
    j = next;
  }
}

// ---- the loop ---------------------------------------------------------------
static JSValue js_now(UG_JS_PARAMS) {
  return JS_NewFloat64(ctx, ug_now_ms());
}

int ug_loop_init(JSContext *ctx) {
  for (int i = 0; i < 65; i++) loop.sig_cb[i] = JS_UNDEFINED;
  // Blocked before any thread starts, so every thread inherits the block and
  // these signals reach only the signalfd (a thread without the block, e.g. a
  // sanitizer's, would otherwise take the default action: death).
  sigemptyset(&loop.sigmask);
  sigaddset(&loop.sigmask, SIGINT);
  sigaddset(&loop.sigmask, SIGTERM);
  sigaddset(&loop.sigmask, SIGHUP);
  sigprocmask(SIG_BLOCK, &loop.sigmask, NULL);
  loop.ep = epoll_create1(EPOLL_CLOEXEC);
  loop.sigfd = signalfd(-1, &loop.sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  loop.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop.ep < 0 || loop.sigfd < 0 || loop.wakefd < 0) return -1;
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = TAG_SIGNAL};
  if (epoll_ctl(loop.ep, EPOLL_CTL_ADD, loop.sigfd, &e) < 0) return -1;
  e.data.u64 = TAG_WAKE;
  if (epoll_ctl(loop.ep, EPOLL_CTL_ADD, loop.wakefd, &e) < 0) return -1;
  JS_SetHostPromiseRejectionTracker(JS_GetRuntime(ctx), track_rejection, NULL);
  return 0;
}

int ug_loop_run(JSContext *ctx) {
  struct epoll_event evs[64];
  drain_jobs(ctx);
  while (!loop.exit_requested) {
    bool alive = loop.w_active > 0 || loop.heap_len > 0 || loop.refs > 0;
    if (!alive) break;
    int timeout = -1;
    if (loop.heap_len) {
      double d = loop.t[loop.heap[0]].deadline - ug_now_ms();
      timeout = d <= 0 ? 0 : (int)(d + 0.999);
    }
    int n = epoll_wait(loop.ep, evs, 64, timeout);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "ugate: fatal: epoll_wait: %s\n", strerror(errno));
      ug_loop_request_exit(70);
      break;
    }
    for (int i = 0; i < n && !loop.exit_requested; i++) {
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
  return loop.exit_code;
}

void ug_loop_free(JSContext *ctx) {
  for (int fd = 0; fd < loop.w_cap; fd++) unwatch(ctx, fd, false);
  for (int i = 0; i < loop.heap_len; i++) {
    JS_FreeValue(ctx, loop.t[loop.heap[i]].cb);
    loop.t[loop.heap[i]].cb = JS_UNDEFINED;
  }
  loop.heap_len = 0;
  for (int i = 0; i < 65; i++) {
    JS_FreeValue(ctx, loop.sig_cb[i]);
    loop.sig_cb[i] = JS_UNDEFINED;
  }
  for (int i = 0; i < loop.rej_len; i++) JS_FreeValue(ctx, loop.rejections[i]);
  free(loop.rejections);
  free(loop.w);
  free(loop.t);
  free(loop.t_free);
  free(loop.heap);
  loop.w = NULL;
  loop.t = NULL;
  loop.t_free = NULL;
  loop.heap = NULL;
  close(loop.ep);
  close(loop.sigfd);
  close(loop.wakefd);
}

static JSValue js_exit(UG_JS_PARAMS) {
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
