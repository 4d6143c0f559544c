// The relay engine: moves bytes between two connected sockets on its own
// thread until both directions are done, then hands a result back.
#ifndef UGATE_RELAY_H
#define UGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipe.h"
#include "ugate.h"

typedef struct relay relay;

// One direction: bytes read from `from` are written to `to`.
typedef struct {
  int from, to;
  struct pipe pipe;  // splice mode: holds bytes in flight; held only while they are
  uint8_t *buf;      // user-space bytes still to write (initial data, copy remainder)
  size_t off, len;
  bool copy;     // this direction uses the read/write loop
  bool limited;  // only `left` more bytes may be read from `from`
  bool nofin;    // finished by the limit: `to` gets no FIN
  uint64_t left;
  bool eof;   // `from` reached EOF
  bool shut;  // shutdown(to, SHUT_WR) done: the direction is finished
  uint64_t bytes;
} relay_dir;

// What an epoll event points to: one socket of one relay.
typedef struct {
  relay *r;
  int side;  // 0 = a (client), 1 = b (server)
} relay_end;

struct relay {
  ug_job job;                  // first: posted back to the loop thread when done
  relay *prev, *next;          // the relay thread's live list
  relay *all_prev, *all_next;  // the loop thread's list of unfinished relays
  relay_dir up, down;          // up: a→b, down: b→a
  relay_end ea, eb;
  int idle_ms;
  double start_ms, last_ms;
  bool spliced;
  bool done;  // closed; result ready
  bool posted;
  const char *reason;  // "eof", "idle", "client-error", "server-error", "shutdown"
  int err;             // errno for the *-error reasons
  JSValue cb;          // touched only on the loop thread
};

typedef struct {
  uint64_t splice_calls, copy_calls;
  int pipes_pooled;
} relay_counters;

// Start the thread (once, at start-up, so its fds are part of the baseline).
int relay_engine_start(void);
// Loop thread → relay thread. relay_start takes ownership of r's fds.
int relay_start(relay *r);
void relay_abort_all(void);
void relay_counters_get(relay_counters *out);
// Stop the thread; live relays are closed. Returns after the thread ended.
void relay_engine_stop(void);
// Set up r (fds, options).
void relay_init(relay *r, int a, int b, bool splice, int idle_ms);
// Bytes to write to d->to before anything read: a malloc'd buffer r now owns (or NULL).
void relay_set_initial(relay_dir *d, uint8_t *bytes, size_t len);
// Read at most `limit` bytes from d->from; then stop reading it and send no FIN.
void relay_set_limit(relay_dir *d, uint64_t limit);

#endif
