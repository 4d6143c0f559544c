// native/engine.c on its own, under ASan/UBSan; driven by test/unit/engine.test.ts.
// Prints "ok N - what" / "not ok N - what"; exits 1 when a check failed.
#define _GNU_SOURCE
#include "../../native/engine.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int checks, failed;
static void say(bool ok, const char *what) {
  printf("%sok %d - %s\n", ok ? "" : "not ", ++checks, what);
  failed += !ok;
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

// The test thread waits for the engine's thread through this.
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void signal_change(void) {
  pthread_cond_broadcast(&cv);
}
#define WAIT_UNTIL(cond)                         \
  do {                                           \
    pthread_mutex_lock(&mu);                     \
    while (!(cond)) pthread_cond_wait(&cv, &mu); \
    pthread_mutex_unlock(&mu);                   \
  } while (0)

// ---- an owner that counts -----------------------------------------------------------------
static int rounds, ticks, stops, order[200], ran;
static bool is_busy, gate_open = true, waiting, signals_blocked;

static void round_hook(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&mu);
  rounds++;
  signal_change();
  pthread_mutex_unlock(&mu);
}
static void tick_hook(engine_owner *o, double now) {
  (void)o;
  (void)now;
  pthread_mutex_lock(&mu);
  ticks++;
  signal_change();
  pthread_mutex_unlock(&mu);
}
static bool busy_hook(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&mu);
  bool b = is_busy;
  pthread_mutex_unlock(&mu);
  return b;
}
static void stop_hook(engine_owner *o) {
  (void)o;
  pthread_mutex_lock(&mu);
  stops++;
  pthread_mutex_unlock(&mu);
}
static engine_owner owner = {
    .round = round_hook, .tick = tick_hook, .busy = busy_hook, .stop = stop_hook};

typedef struct {
  engine_job job;
  int n;
} numbered;

static void run_numbered(engine_job *j) {
  numbered *x = (numbered *)j;
  pthread_mutex_lock(&mu);
  waiting = !gate_open;
  signal_change();
  while (!gate_open) pthread_cond_wait(&cv, &mu);  // job 0 holds the thread while the rest queue
  order[ran++] = x->n;
  sigset_t s;
  pthread_sigmask(SIG_BLOCK, NULL, &s);
  signals_blocked = sigismember(&s, SIGTERM) && sigismember(&s, SIGINT) && sigismember(&s, SIGCHLD);
  signal_change();
  pthread_mutex_unlock(&mu);
}

static void noop(engine_job *j) {
  (void)j;
}

// ---- a watched eventfd ----------------------------------------------------------------------
typedef struct {
  engine_handler h;
  int fd, events;
} watched;

static void on_readable(engine_handler *h, uint32_t events) {
  watched *w = (watched *)h;
  uint64_t v;
  if ((events & EPOLLIN) && read(w->fd, &v, sizeof v) == sizeof v) {
    pthread_mutex_lock(&mu);
    w->events++;
    signal_change();
    pthread_mutex_unlock(&mu);
  }
}

int main(void) {
  int baseline = open_fds();
  engine *e = engine_start("engine-test", 20);
  say(e != NULL, "engine_start");
  if (!e) return 1;
  engine_add_owner(e, &owner);

  // Jobs: posted while the thread is held by the first, they run in post order,
  // all in one pass (one round).
  static numbered jobs[100];
  pthread_mutex_lock(&mu);
  gate_open = false;
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < 100; i++) jobs[i] = (numbered){.job.run = run_numbered, .n = i};
  engine_post(e, &jobs[0].job);
  WAIT_UNTIL(waiting);  // job 0 holds the thread
  for (int i = 1; i < 100; i++) engine_post(e, &jobs[i].job);
  pthread_mutex_lock(&mu);
  int rounds_before = rounds;
  gate_open = true;
  signal_change();
  pthread_mutex_unlock(&mu);
  WAIT_UNTIL(ran == 100 && rounds >= rounds_before + 2);
  bool in_order = true;
  for (int i = 0; i < 100; i++) in_order &= order[i] == i;
  say(in_order, "100 jobs ran once each, in post order");
  say(rounds == rounds_before + 2, "jobs 1-99 ran in one pass (one round after job 0's)");
  say(signals_blocked, "signals are blocked on the engine thread");

  // A watched fd: its handler runs with the events.
  watched w = {.h.on_event = on_readable, .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  say(engine_watch(e, w.fd, EPOLLIN, &w.h) == 0, "engine_watch");
  say(engine_watch(e, w.fd, EPOLLIN, &w.h) < 0, "watching the same fd twice fails");
  uint64_t one = 1;
  say(write(w.fd, &one, sizeof one) == sizeof one, "eventfd written");
  WAIT_UNTIL(w.events == 1);
  say(engine_rewatch(e, w.fd, EPOLLIN | EPOLLET, &w.h) == 0, "engine_rewatch");
  say(write(w.fd, &one, sizeof one) == sizeof one, "eventfd written again");
  WAIT_UNTIL(w.events == 2);
  say(true, "the handler saw both writes");
  say(engine_unwatch(e, w.fd) == 0, "engine_unwatch");
  close(w.fd);

  // Ticks come while the owner is busy.
  pthread_mutex_lock(&mu);
  is_busy = true;
  int ticks_before = ticks;
  pthread_mutex_unlock(&mu);
  static engine_job nudge = {.run = noop};  // a pass, so the thread sees busy() now
  engine_post(e, &nudge);
  WAIT_UNTIL(ticks >= ticks_before + 3);
  say(true, "ticks come while busy() is true");

  // Stop: jobs posted before it still run, the stop hook runs, fds are back to baseline.
  pthread_mutex_lock(&mu);
  ran = 0;
  pthread_mutex_unlock(&mu);
  static numbered last = {.job.run = run_numbered, .n = 7};
  engine_post(e, &last.job);
  engine_stop(e);
  say(ran == 1 && order[0] == 7, "a job posted before engine_stop ran");
  say(stops == 1, "the stop hook ran once");
  say(open_fds() == baseline, "fds back to baseline after engine_stop");
  printf("1..%d\n", checks);
  return failed ? 1 : 0;
}
