// DNS: getaddrinfo blocks, so it runs on a few worker threads; answers come
// back to the event loop as posted jobs. A slow lookup never stalls the loop,
// and up to MAX_WORKERS lookups run at once.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ugate.h"

#define MAX_WORKERS 4
_Static_assert(UG_ADDR_TEXT == INET6_ADDRSTRLEN, "the address text size");

typedef struct lookup {
  ug_job job;  // first: the loop hands this pointer back; job.next links the work queue
  struct lookup *all_prev, *all_next;  // every lookup not yet completed
  JSValue cb;                          // a JS caller's, or
  ug_resolved *c_done;                 // a C caller's (NULL once cancelled)
  void *c_arg;
  char *host;
  int gai_err;
  int naddrs;
  char addrs[UG_MAX_ADDRS][INET6_ADDRSTRLEN];
} lookup;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  ug_job_queue queue;  // lookups waiting for a worker
  lookup *all;         // owned by the loop thread
  int workers, idle;
  bool closed;
} resolver = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void resolve_now(lookup *l) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  l->gai_err = getaddrinfo(l->host, NULL, &hints, &res);
  for (struct addrinfo *ai = res; ai && l->naddrs < UG_MAX_ADDRS; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN];
    if (ai->ai_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, buf, sizeof buf);
    else if (ai->ai_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, buf, sizeof buf);
    else
      continue;
    bool dup = false;
    for (int i = 0; i < l->naddrs && !dup; i++) dup = !strcmp(l->addrs[i], buf);
    if (!dup) strcpy(l->addrs[l->naddrs++], buf);
  }
  if (res) freeaddrinfo(res);
}

static void *worker(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);  // signals belong to the loop's signalfd
  pthread_mutex_lock(&resolver.lock);
  for (;;) {
    while (!resolver.queue.head && !resolver.closed) {
      resolver.idle++;
      pthread_cond_wait(&resolver.cond, &resolver.lock);
      resolver.idle--;
    }
    if (resolver.closed) break;
    lookup *l = (lookup *)ug_job_queue_pop(&resolver.queue);
    pthread_mutex_unlock(&resolver.lock);
    resolve_now(l);
    pthread_mutex_lock(&resolver.lock);
    if (resolver.closed) {  // the runtime is gone; nobody waits for this answer
      free(l->host);
      free(l);
      break;
    }
    ug_loop_post(&l->job);
  }
  resolver.workers--;
  pthread_mutex_unlock(&resolver.lock);
  return NULL;
}

static void unlink_lookup(lookup *l) {
  if (l->all_prev)
    l->all_prev->all_next = l->all_next;
  else
    resolver.all = l->all_next;
  if (l->all_next) l->all_next->all_prev = l->all_prev;
}

static void complete(JSContext *ctx, ug_job *job) {
  lookup *l = (lookup *)job;
  unlink_lookup(l);
  ug_loop_unref();
  if (JS_IsUndefined(l->cb)) {  // a C caller's
    if (l->c_done) l->c_done(ctx, l->c_arg, l->gai_err, l->naddrs, l->addrs);
    free(l->host);
    free(l);
    return;
  }
  JSValue args[2];
  if (l->gai_err || l->naddrs == 0) {
    args[0] = JS_NewString(ctx, l->gai_err ? gai_strerror(l->gai_err) : "no address");
    args[1] = JS_NewArray(ctx);
  } else {
    args[0] = JS_NULL;
    args[1] = JS_NewArray(ctx);
    for (int i = 0; i < l->naddrs; i++)
      JS_SetPropertyUint32(ctx, args[1], i, JS_NewString(ctx, l->addrs[i]));
  }
  ug_call(ctx, l->cb, 2, args);
  JS_FreeValue(ctx, args[0]);
  JS_FreeValue(ctx, args[1]);
  JS_FreeValue(ctx, l->cb);
  free(l->host);
  free(l);
}

// Queue l for a worker (starting one if none is idle); the loop stays alive until it completes.
static void submit(lookup *l) {
  l->job.complete = complete;
  l->all_next = resolver.all;
  if (resolver.all) resolver.all->all_prev = l;
  resolver.all = l;
  ug_loop_ref();
  pthread_mutex_lock(&resolver.lock);
  ug_job_queue_push(&resolver.queue, &l->job);
  if (resolver.idle == 0 && resolver.workers < MAX_WORKERS) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, worker, NULL) == 0) resolver.workers++;
    pthread_attr_destroy(&at);
  }
  bool stuck = resolver.workers == 0;  // no thread could be made: the lookup would never end
  pthread_cond_signal(&resolver.cond);
  pthread_mutex_unlock(&resolver.lock);
  UG_CHECK(!stuck);
}

static JSValue js_resolve(UG_JS_PARAMS) {
  if (!JS_IsFunction(ctx, argv[1]))
    return JS_ThrowTypeError(ctx, "resolve: callback is not a function");
  const char *host = JS_ToCString(ctx, argv[0]);
  if (!host) return JS_EXCEPTION;
  lookup *l = calloc(1, sizeof *l);
  char *h = strdup(host);
  JS_FreeCString(ctx, host);
  if (!l || !h) {
    free(l);
    free(h);
    return JS_ThrowOutOfMemory(ctx);
  }
  l->host = h;
  l->cb = JS_DupValue(ctx, argv[1]);
  submit(l);
  return JS_UNDEFINED;
}

ug_lookup *ug_resolve(const char *host, ug_resolved *done, void *arg) {
  lookup *l = calloc(1, sizeof *l);
  char *h = strdup(host);
  if (!l || !h) {
    free(l);
    free(h);
    return NULL;
  }
  l->host = h;
  l->cb = JS_UNDEFINED;
  l->c_done = done;
  l->c_arg = arg;
  submit(l);
  return l;
}

void ug_resolve_cancel(ug_lookup *l) {
  l->c_done = NULL;
  l->c_arg = NULL;
}

// At exit: drop callbacks of lookups still running; workers free their own.
void ug_dns_shutdown(JSContext *ctx) {
  pthread_mutex_lock(&resolver.lock);
  resolver.closed = true;
  for (lookup *l = resolver.all, *next; l; l = next) {
    next = l->all_next;
    JS_FreeValue(ctx, l->cb);
    l->cb = JS_UNDEFINED;
    bool queued = false;
    for (ug_job *q = resolver.queue.head; q && !queued; q = q->next) queued = q == &l->job;
    if (queued) {
      free(l->host);
      free(l);
    }
  }
  resolver.all = NULL;
  resolver.queue = (ug_job_queue){0};
  pthread_cond_broadcast(&resolver.cond);
  pthread_mutex_unlock(&resolver.lock);
}

static const JSCFunctionListEntry dns_funcs[] = {
    JS_CFUNC_DEF("resolve", 2, js_resolve),
};

ug_exports ug_dns_exports(void) {
  return (ug_exports){dns_funcs, sizeof dns_funcs / sizeof dns_funcs[0]};
}
