// One worker thread with an epoll set: the home of the relay, the UDP engine
// and the HBONE tunnels. Owners register fds with a handler and hand work over
// with intrusive jobs; handlers, jobs and owner hooks run on the engine's
// thread, which keeps every signal blocked (they belong to the loop's signalfd).
//
// One pass of the thread: wait for events (no longer than the next tick when
// an owner is busy), run their handlers, run the jobs posted meanwhile (in
// post order), tick the busy owners if a tick is due, then each owner's round.
// Memory an event can name (a handler's struct) stays valid until the round:
// close an fd in a handler, free its owner in the round.
#ifndef UGATE_ENGINE_H
#define UGATE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct engine engine;

// Embedded in the owner's struct; epoll's data.ptr points to it.
typedef struct engine_handler {
  void (*on_event)(struct engine_handler *h, uint32_t events);
} engine_handler;

// Embedded in the owner's struct: work handed to the thread without an
// allocation. A job is queued at most once at a time; it may be posted again
// from its own run().
typedef struct engine_job {
  struct engine_job *next;
  void (*run)(struct engine_job *j);
} engine_job;

// Per-owner hooks, several owners per engine (the relay and hbone share one).
// Any hook may be NULL; a NULL busy() counts as always busy.
typedef struct engine_owner {
  struct engine_owner *next;
  void (*round)(struct engine_owner *o);                // after each pass (post results)
  void (*tick)(struct engine_owner *o, double now_ms);  // about every tick_ms while busy()
  bool (*busy)(struct engine_owner *o);                 // keeps the ticks coming
  void (*stop)(struct engine_owner *o);                 // the engine is stopping: close everything
} engine_owner;

// A running engine (thread name `name`, at most 15 chars), or NULL with errno set.
engine *engine_start(const char *name, int tick_ms);
// Any time, from any thread; owners are never removed (they go with the engine).
void engine_add_owner(engine *e, engine_owner *o);
// From any thread; 0 or -1 with errno (epoll_ctl ADD, MOD, DEL). Closing an
// fd that nobody dup'ed leaves the set without engine_unwatch.
int engine_watch(engine *e, int fd, uint32_t events, engine_handler *h);
int engine_rewatch(engine *e, int fd, uint32_t events, engine_handler *h);
int engine_unwatch(engine *e, int fd);
// From any thread; only the post that finds the queue empty writes the eventfd.
void engine_post(engine *e, engine_job *j);
// From another thread: the thread skips the events it fetched, runs the jobs
// already posted (a hand-over's fds are then the owner's to close), calls the
// stop hooks and ends; returns after it ended, with e freed.
void engine_stop(engine *e);
double engine_now_ms(void);  // CLOCK_MONOTONIC_COARSE, in ms
// A unix-domain stream socket cannot carry an RST: its peer closing it while
// we have not shut our side toward it (`shut` false) is how an abort shows
// (EPOLLHUP). The relay and the HBONE streams (socket pairs between them) pass
// it on as a reset. True for such an event on such a socket.
bool engine_unix_aborted(int fd, uint32_t events, bool shut);
// The engine the relay runs on, NULL before relay_engine_start() (relay.h)
// (hbone adds its owner and handlers there).
engine *relay_engine(void);

#endif
