// The TCP relay: moves bytes between two connected sockets on its own thread
// until both directions are done, then reports the result through a plain C
// callback. Knows nothing of JS (mod_relay.c is the JS side).
#ifndef UGATE_RELAY_H
#define UGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "pipe.h"

typedef struct relay relay;

#define RELAY_INITIAL_MAX UINT32_MAX

// Runs on the relay thread once r is finished: its fds are closed and the
// result fields below are final. From then on r belongs to the callback's
// owner; the relay thread never touches it again.
typedef void relay_done_fn(relay *r);

// One direction: bytes read from `from` are written to `to`. A direction in
// splice mode starts by copying (recv/send through the relay thread's scratch
// buffer: cheaper than splice for a few bytes, and it needs no pipe) and
// switches to splice once one read brings 16 KiB or more (relay.c: SPLICE_AT).
typedef struct {
  int from, to;
  struct pipe pipe;     // splice mode: holds bytes in flight; held only while they are
  bool copy : 1;        // reading through the scratch buffer (for now, or for good)
  bool may_splice : 1;  // copy for now: switch to splice after a bulk read
  bool limited : 1;
  bool nofin : 1;     // finished by the limit: `to` gets no FIN
  bool drain : 1;     // read `from` until recv says EAGAIN or 0: see pump_copy
  bool fin : 1;       // `from` got the peer's FIN (EPOLLRDHUP): see pump_copy
  bool urgent : 1;    // `from` got urgent data: see pump_splice
  bool eof : 1;       // `from` reached EOF
  bool shut : 1;      // shutdown(to, SHUT_WR) done: the direction is finished
  uint32_t off, len;  // buf[off, len): bytes still to write to `to`
  uint8_t *buf;       // malloc'd: initial data, or the unsent rest of a copied read
  uint64_t left;      // limited: only this many more bytes may be read from `from`
  uint64_t bytes;     // result: bytes written to `to`
} relay_dir;

struct relay {
  relay *prev, *next;         // the relay thread's lists (live, finished)
  engine_job start;           // the hand-over to the relay thread
  engine_handler on_a, on_b;  // events of socket a, of socket b
  relay_dir up, down;         // up: a→b, down: b→a
  int idle_ms;
  int err;  // result: errno for the *-error reasons
  double last_ms;
  relay_done_fn *on_done;
  bool done;     // closed; on_done is due
  bool abort;    // relay_abort() asked to close it; guarded by relay.c's lock
  bool spliced;  // result: some byte went through splice(2)
  // The rest of the result, final when on_done runs:
  double start_ms;     // CLOCK_MONOTONIC_COARSE, in ms
  const char *reason;  // "eof", "idle", "client-error", "server-error", "shutdown", "closed"
  // up/down bytes as of the last sweep, for relay_bytes(); guarded by relay.c's lock
  uint64_t shown_up, shown_down;
  // Loop thread only: the started list (relay_first) and the relay's number since start.
  relay *lprev, *lnext;
  double id;
};

typedef struct {
  uint64_t splice_calls, copy_calls;
  int pipes_pooled;
} relay_counters;

// Start the relay engine (once, at start-up, so its fds are part of the baseline).
int relay_engine_start(void);
// Stop the relay engine; live relays are closed and their on_done is never called.
// Returns after the thread ended.
void relay_engine_stop(void);

// Set up r for sockets a (client) and b (server); r is the caller's memory.
void relay_init(relay *r, int a, int b, bool splice, int idle_ms, relay_done_fn *on_done);
// Bytes to write to d->to before anything read: a malloc'd buffer r now owns (or NULL);
// len < RELAY_INITIAL_MAX.
void relay_set_initial(relay_dir *d, uint8_t *bytes, size_t len);
// Read at most `limit` bytes from d->from; then stop reading it and send no FIN.
void relay_set_limit(relay_dir *d, uint64_t limit);
// Hand r to the relay thread, which owns r and its fds until on_done. r gets
// its id and joins the started list until relay_release: every relay, whoever
// started it, is listed (and its bytes shown) the same way.
void relay_start(relay *r);
// Loop thread: r's result was taken (after on_done): it leaves the started list.
void relay_release(relay *r);
// Loop thread: the relays started and not yet released (then r->lnext); how many; ever started.
relay *relay_first(void);
int relay_active(void);
double relay_total(void);
// Close every live relay (reason "shutdown"); their on_done follows.
void relay_abort_all(void);
// Close r (reason "closed") if it is still live; its on_done follows. Loop thread
// only, and only while r's on_done has not been seen there (r's memory is valid).
void relay_abort(relay *r);
void relay_counters_get(relay_counters *out);
// Bytes r has moved each way so far, as published by the relay thread once a second
// (monitoring; the result's counts are exact). Same rules as relay_abort.
void relay_bytes(relay *r, uint64_t *up, uint64_t *down);

#endif
