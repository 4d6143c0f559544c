// The engine thread (engine.h): epoll, a wake eventfd, a job queue and the
// owners' hooks; what runs on it is the owners' business.
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_PER_WAIT 128

struct engine {
  pthread_t thread;
  int ep, wakefd, tick_ms;
  engine_handler wake;   // the eventfd's
  pthread_mutex_t lock;  // guards the fields below
  engine_job *jobs, **jobs_tail;
  engine_owner *owners;
  bool stop;
  char name[16];
};

double engine_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool engine_unix_aborted(int fd, uint32_t events, bool shut) {
  if (!(events & EPOLLHUP) || shut) return false;
  int domain = 0;  // asked only on a HUP: TCP shows one only after both FINs or with an error
  socklen_t l = sizeof domain;
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) == 0 && domain == AF_UNIX;
}

static void kick(engine *e) {
  uint64_t one = 1;
  ssize_t n = write(e->wakefd, &one, sizeof one);
  (void)n;
}

// The eventfd is read before the queue is taken (events come first in a
// pass), so a post that finds the queue empty always raises a new wake.
static void on_wake(engine_handler *h, uint32_t events) {
  (void)events;
  engine *e = (engine *)((char *)h - offsetof(engine, wake));
  uint64_t v;
  ssize_t n = read(e->wakefd, &v, sizeof v);
  (void)n;
}

static bool owner_busy(engine_owner *o) {
  return o->tick && (!o->busy || o->busy(o));
}

// Milliseconds until the next tick (0: due), or -1 when no owner is busy.
static int wait_ms(engine *e, engine_owner *owners, double last_tick) {
  bool busy = false;
  for (engine_owner *o = owners; o && !busy; o = o->next) busy = owner_busy(o);
  if (!busy) return -1;
  double left = last_tick + e->tick_ms - engine_now_ms();
  return left <= 0 ? 0 : (int)left + 1;  // +1: never wake just before it is due
}

static void *engine_thread(void *arg) {
  engine *e = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);  // signals belong to the loop's signalfd
  pthread_setname_np(pthread_self(), e->name);
  struct epoll_event evs[EVENTS_PER_WAIT];
  double last_tick = engine_now_ms();
  pthread_mutex_lock(&e->lock);
  engine_owner *owners = e->owners;
  pthread_mutex_unlock(&e->lock);
  for (;;) {
    int n = epoll_wait(e->ep, evs, EVENTS_PER_WAIT, wait_ms(e, owners, last_tick));
    pthread_mutex_lock(&e->lock);
    bool stop = e->stop;
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < n && !stop; i++) {
      engine_handler *h = evs[i].data.ptr;
      h->on_event(h, evs[i].events);
    }
    pthread_mutex_lock(&e->lock);
    engine_job *jobs = e->jobs;
    e->jobs = NULL;
    e->jobs_tail = &e->jobs;
    stop = e->stop;
    owners = e->owners;  // new owners are pushed at the head: this snapshot stays valid
    pthread_mutex_unlock(&e->lock);
    while (jobs) {
      engine_job *j = jobs;
      jobs = j->next;
      j->next = NULL;
      j->run(j);
    }
    if (stop) {
      for (engine_owner *o = owners; o; o = o->next)
        if (o->stop) o->stop(o);
      break;
    }
    double now = engine_now_ms();
    if (now - last_tick >= e->tick_ms) {
      last_tick = now;
      for (engine_owner *o = owners; o; o = o->next)
        if (owner_busy(o)) o->tick(o, now);
    }
    for (engine_owner *o = owners; o; o = o->next)
      if (o->round) o->round(o);
  }
  return NULL;
}

engine *engine_start(const char *name, int tick_ms) {
  engine *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->tick_ms = tick_ms;
  e->jobs_tail = &e->jobs;
  e->wake.on_event = on_wake;
  snprintf(e->name, sizeof e->name, "%s", name);
  pthread_mutex_init(&e->lock, NULL);
  e->ep = epoll_create1(EPOLL_CLOEXEC);
  e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int err = 0;
  if (e->ep < 0 || e->wakefd < 0 || engine_watch(e, e->wakefd, EPOLLIN, &e->wake) < 0)
    err = errno;
  else
    err = pthread_create(&e->thread, NULL, engine_thread, e);
  if (err == 0) return e;
  if (e->ep >= 0) close(e->ep);
  if (e->wakefd >= 0) close(e->wakefd);
  pthread_mutex_destroy(&e->lock);
  free(e);
  errno = err;
  return NULL;
}

void engine_add_owner(engine *e, engine_owner *o) {
  pthread_mutex_lock(&e->lock);
  o->next = e->owners;
  e->owners = o;
  pthread_mutex_unlock(&e->lock);
  kick(e);  // a busy owner shortens the thread's wait
}

static int ctl(engine *e, int op, int fd, uint32_t events, engine_handler *h) {
  struct epoll_event ev = {.events = events, .data.ptr = h};
  return epoll_ctl(e->ep, op, fd, &ev);
}

int engine_watch(engine *e, int fd, uint32_t events, engine_handler *h) {
  return ctl(e, EPOLL_CTL_ADD, fd, events, h);
}

int engine_rewatch(engine *e, int fd, uint32_t events, engine_handler *h) {
  return ctl(e, EPOLL_CTL_MOD, fd, events, h);
}

int engine_unwatch(engine *e, int fd) {
  return ctl(e, EPOLL_CTL_DEL, fd, 0, NULL);
}

void engine_post(engine *e, engine_job *j) {
  j->next = NULL;
  pthread_mutex_lock(&e->lock);
  bool first = e->jobs == NULL;
  *e->jobs_tail = j;
  e->jobs_tail = &j->next;
  pthread_mutex_unlock(&e->lock);
  if (first) kick(e);
}

void engine_stop(engine *e) {
  pthread_mutex_lock(&e->lock);
  e->stop = true;
  pthread_mutex_unlock(&e->lock);
  kick(e);
  pthread_join(e->thread, NULL);
  close(e->ep);
  close(e->wakefd);
  pthread_mutex_destroy(&e->lock);
  free(e);
}
