// The TCP relay, on the relay engine's thread (engine.c). Once a route is
// chosen, both sockets come here and the payload never enters JS again:
// splice(2) through a pipe per direction (pipe.c: held only while bytes are in
// it), or a recv/send loop through one scratch buffer. Splice mode copies too
// until a direction proves bulk (one read of SPLICE_AT bytes): for a few bytes
// two copies cost less than two splices and a pipe. Each socket is registered
// once, edge-triggered; an event pumps the direction that reads that socket,
// and the one that writes it if that one waits for room. A finished relay goes
// to its on_done.
#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

#define SCRATCH_SIZE (64 * 1024)
#define SPLICE_AT (16 * 1024)  // a copied read this big: the flow is bulk, splice it
#define SWEEP_MS 1000          // idle timeouts are checked this often (the engine's tick)

static engine *eng;  // the relay engine; hbone runs on it too (relay_engine())

// Between the loop thread and the relay thread.
static struct {
  pthread_mutex_t lock;        // guards the fields below and each relay's abort and shown_*
  bool abort_all, abort_some;  // abort_some: some relay has its abort flag set
  bool requested;              // `requests` is posted and has not run yet
  relay_counters published;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

// Owned by the relay thread.
static relay *live;
static relay *finished;  // closed in this pass; to on_done once no event can name them
static relay_counters counters;
static uint8_t scratch[SCRATCH_SIZE];

// ---- one direction ----------------------------------------------------------------
// Result of a pump: 0 = waiting for readiness (or finished); otherwise the side
// (1 = from, 2 = to) whose socket failed, with errno in *err.
enum { PUMP_OK = 0, PUMP_FROM_ERR = 1, PUMP_TO_ERR = 2 };

static int write_buffered(relay *r, relay_dir *d, int *err) {
  while (d->off < d->len) {
    ssize_t n = send(d->to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
    counters.copy_calls++;
    if (n > 0) {
      d->off += n;
      d->bytes += n;
      r->last_ms = engine_now_ms();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return PUMP_OK;
    *err = n < 0 ? errno : EPIPE;
    return PUMP_TO_ERR;
  }
  free(d->buf);
  d->buf = NULL;
  d->off = d->len = 0;
  return PUMP_OK;
}

// Count bytes read against the limit; at the limit the direction stops
// reading (like EOF) but will not pass a FIN on.
static bool took_last(relay_dir *d, size_t n) {
  if (!d->limited) return false;
  d->left -= n;
  if (d->left > 0) return false;
  d->eof = true;
  d->nofin = true;
  return true;
}

static int pump_splice(relay *r, relay_dir *d, int *err) {
  for (;;) {
    if (d->pipe.data) {
      ssize_t w = splice_from_pipe(&d->pipe, d->to);
      if (w == SPLICE_WAIT) return PUMP_OK;  // `to` is full: wait for EPOLLOUT
      if (w < 0) {
        *err = errno;
        return PUMP_TO_ERR;
      }
      d->bytes += w;
      r->last_ms = engine_now_ms();
      continue;
    }
    if (d->eof) break;
    if (!pipe_held(&d->pipe) && !pipe_get(&d->pipe)) {  // out of fds for pipes: copy instead
      d->copy = true;
      return PUMP_OK;
    }
    size_t want = d->limited && d->left < PIPE_SIZE ? (size_t)d->left : PIPE_SIZE;
    ssize_t n = splice_to_pipe(d->from, &d->pipe, want);
    if (n > 0) {
      r->spliced = true;
      took_last(d, n);  // at the limit: flush the pipe, then the loop ends at `eof`
      continue;
    }
    if (n == SPLICE_EOF && !d->urgent) {
      d->eof = true;
      break;
    }
    if (n == SPLICE_ERROR) {
      *err = errno;
      return PUMP_FROM_ERR;
    }
    // The pipe is empty here, so SPLICE_WAIT means `from` is quiet: give the
    // pipe back meanwhile. SPLICE_UNSUPPORTED: this socket copies from now on.
    // With urgent data seen, splice may be stuck at its mark (EAGAIN, or 0
    // with a FIN behind it) where recv reads past it: copy until the next bulk read.
    pipe_put(&d->pipe);
    if (n == SPLICE_UNSUPPORTED)
      d->copy = true;
    else if (d->urgent)
      d->copy = d->may_splice = true;
    return PUMP_OK;
  }
  pipe_put(&d->pipe);
  return PUMP_OK;
}

// Send n scratch bytes to d->to; what `to` does not take now is kept in d->buf.
static int send_scratch(relay *r, relay_dir *d, size_t n, int *err) {
  ssize_t w;
  do {
    w = send(d->to, scratch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    counters.copy_calls++;
  } while (w < 0 && errno == EINTR);
  if (w < 0 && errno != EAGAIN) {
    *err = errno;
    return PUMP_TO_ERR;
  }
  if (w < 0) w = 0;
  d->bytes += w;
  r->last_ms = engine_now_ms();
  if ((size_t)w == n) return PUMP_OK;
  d->buf = malloc(n - w);  // `to` is full: keep the rest and wait for EPOLLOUT
  if (!d->buf) {
    *err = ENOMEM;
    return PUMP_TO_ERR;
  }
  memcpy(d->buf, scratch + w, n - w);
  d->off = 0;
  d->len = n - w;
  return PUMP_OK;
}

static int pump_copy(relay *r, relay_dir *d, int *err) {
  while (!d->eof) {
    size_t want = d->limited && d->left < SCRATCH_SIZE ? (size_t)d->left : SCRATCH_SIZE;
    ssize_t n = recv(d->from, scratch, want, MSG_DONTWAIT);
    counters.copy_calls++;
    if (n == 0) {
      d->eof = true;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return PUMP_OK;
      *err = errno;
      return PUMP_FROM_ERR;
    }
    took_last(d, n);
    int rc = send_scratch(r, d, n, err);
    if (rc || d->buf) return rc;
    if (d->may_splice && n >= SPLICE_AT) {  // bulk: pump() goes on in splice mode
      d->copy = d->may_splice = false;
      return PUMP_OK;
    }
    // A short read emptied the socket: bytes arriving later raise a new edge,
    // so no recv is needed just to see EAGAIN. If the FIN had arrived before
    // this read, the read stopped at it (TCP and unix sockets queue a FIN
    // behind all its data): a recv now could only return 0, so this is EOF.
    // Not so after an error (recv must still see it) nor after urgent data
    // (a read stops short at its mark): read on.
    if ((size_t)n < want && !d->drain) {
      if (!d->fin) return PUMP_OK;
      d->eof = true;
      break;
    }
  }
  return PUMP_OK;
}

static int pump(relay *r, relay_dir *d, int *err) {
  if (d->shut) return PUMP_OK;
  int rc = write_buffered(r, d, err);  // bytes read earlier go first, in order
  if (rc || d->buf) return rc;
  for (;;) {  // again after a switch of mode (copy → splice, or splice falling back to copy)
    bool copy = d->copy;
    rc = copy ? pump_copy(r, d, err) : pump_splice(r, d, err);
    if (rc || d->buf || d->copy == copy) break;
  }
  if (rc) return rc;
  if (d->eof && !d->buf && d->pipe.data == 0) {
    // Pass the FIN on: half-close. Unless the other direction read `to` to its
    // EOF already: then the relay closes now, and close() sends that FIN.
    const relay_dir *other = d == &r->up ? &r->down : &r->up;
    bool closing = other->shut && !other->nofin;
    if (!d->nofin && !closing) shutdown(d->to, SHUT_WR);
    d->shut = true;
  }
  return PUMP_OK;
}

// ---- lifecycle ------------------------------------------------------------------
static void finish(relay *r, const char *reason, int err) {
  if (r->done) return;
  r->done = true;
  r->reason = reason;
  r->err = err;
  bool rst = err != 0;  // an error on one side is passed on as a reset
  int fds[2] = {r->up.from, r->up.to};
  for (int i = 0; i < 2; i++) {
    if (rst) {
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fds[i]);  // also leaves the epoll set
  }
  pipe_put(&r->up.pipe);
  pipe_put(&r->down.pipe);
  free(r->up.buf);
  free(r->down.buf);
  r->up.buf = r->down.buf = NULL;
  if (r->prev)
    r->prev->next = r->next;
  else
    live = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = NULL;
  r->next = finished;
  finished = r;
}

// Pump the directions asked for (up first, so an error is blamed on the right side).
static void run_pumps(relay *r, bool up, bool down) {
  int err = 0;
  int rc = up ? pump(r, &r->up, &err) : PUMP_OK;
  if (rc) return finish(r, rc == PUMP_FROM_ERR ? "client-error" : "server-error", err);
  rc = down ? pump(r, &r->down, &err) : PUMP_OK;
  if (rc) return finish(r, rc == PUMP_FROM_ERR ? "server-error" : "client-error", err);
  if (r->up.shut && r->down.shut) finish(r, "eof", 0);
}

static bool waits_for_room(const relay_dir *d) {
  return d->buf || d->pipe.data;
}

static void on_event(relay *r, int side, uint32_t events) {
  // side 0: a (client), 1: b (server)
  if (r->done) return;                        // closed earlier in this pass
  relay_dir *in = side ? &r->down : &r->up;   // reads this socket
  relay_dir *out = side ? &r->up : &r->down;  // writes to it
  bool failed = events & (EPOLLERR | EPOLLHUP);
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(in->from, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) return finish(r, side ? "server-error" : "client-error", err);
  }
  if (engine_unix_aborted(in->from, events, out->shut))  // an HBONE stream reset by the tunnel
    return finish(r, side ? "server-error" : "client-error", ECONNRESET);
  // A HUP that comes with RDHUP is the normal end of a socket whose two FINs
  // are through; without RDHUP it is an error or a reset: read to the end.
  if (events & EPOLLRDHUP) in->fin = true;
  if ((events & (EPOLLERR | EPOLLPRI)) || (events & (EPOLLHUP | EPOLLRDHUP)) == EPOLLHUP)
    in->drain = true;
  if (events & EPOLLPRI) in->urgent = true;
  bool pump_in = failed || (events & (EPOLLIN | EPOLLRDHUP | EPOLLPRI));
  bool pump_out = failed || ((events & EPOLLOUT) && waits_for_room(out));
  run_pumps(r, side ? pump_out : pump_in, side ? pump_in : pump_out);
}

static void on_a(engine_handler *h, uint32_t events) {
  on_event((relay *)((char *)h - offsetof(relay, on_a)), 0, events);
}

static void on_b(engine_handler *h, uint32_t events) {
  on_event((relay *)((char *)h - offsetof(relay, on_b)), 1, events);
}

// Registering a socket that is already readable or writable queues its first
// event, so the pumps start from there: initial bytes go out on EPOLLOUT.
// The hand-over job (relay_start).
static void adopt(engine_job *j) {
  relay *r = (relay *)((char *)j - offsetof(relay, start));
  r->next = live;
  if (live) live->prev = r;
  live = r;
  r->on_a.on_event = on_a;
  r->on_b.on_event = on_b;
  uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  int ok = engine_watch(eng, r->up.from, events, &r->on_a);
  if (ok == 0) ok = engine_watch(eng, r->up.to, events, &r->on_b);
  if (ok < 0) return finish(r, "client-error", errno);
  // relay_abort() may have come before this job ran, behind a request already queued.
  pthread_mutex_lock(&shared.lock);
  bool abort = r->abort;
  pthread_mutex_unlock(&shared.lock);
  if (abort) return finish(r, "closed", 0);
  // A direction limited to 0 bytes with nothing to send is over already; no
  // event of its own may ever come.
  bool up_over = r->up.eof && !r->up.buf, down_over = r->down.eof && !r->down.buf;
  if (up_over || down_over) run_pumps(r, up_over, down_over);
}

static void sweep_idle(double now) {
  for (relay *r = live, *next; r; r = next) {
    next = r->next;
    if (r->idle_ms > 0 && now - r->last_ms >= r->idle_ms) finish(r, "idle", 0);
  }
}

// Live relays' byte counts for relay_bytes(), once a second: one lock per sweep,
// not one per transfer.
static void publish_bytes(void) {
  pthread_mutex_lock(&shared.lock);
  for (relay *r = live; r; r = r->next) {
    r->shown_up = r->up.bytes;
    r->shown_down = r->down.bytes;
  }
  pthread_mutex_unlock(&shared.lock);
}

static void publish_counters(void) {
  counters.splice_calls = splice_calls();
  counters.pipes_pooled = pipe_pool_size();
  pthread_mutex_lock(&shared.lock);
  shared.published = counters;
  pthread_mutex_unlock(&shared.lock);
}

// After each pass of the engine: results go out.
static void post_finished(engine_owner *o) {
  (void)o;
  if (!live)
    pipe_pool_drain();  // before the last result: fds are back to baseline when it is reported
  publish_counters();
  while (finished) {
    relay *r = finished;
    finished = r->next;
    r->next = NULL;
    r->on_done(r);
  }
}

// Finish the live relays whose abort flag relay_abort() set.
static void close_requested(void) {
  for (relay *r = live, *next; r; r = next) {
    next = r->next;
    pthread_mutex_lock(&shared.lock);
    bool abort = r->abort;
    pthread_mutex_unlock(&shared.lock);
    if (abort) finish(r, "closed", 0);
  }
}

// The request job: the flags relay_abort() and relay_abort_all() raised.
static void requests(engine_job *j) {
  (void)j;
  pthread_mutex_lock(&shared.lock);
  bool abort_all = shared.abort_all, abort_some = shared.abort_some;
  shared.abort_all = shared.abort_some = shared.requested = false;
  pthread_mutex_unlock(&shared.lock);
  if (abort_some) close_requested();
  if (abort_all)
    while (live) finish(live, "shutdown", 0);
}

static void tick(engine_owner *o, double now) {
  (void)o;
  sweep_idle(now);
  publish_bytes();
}

static bool busy(engine_owner *o) {
  (void)o;
  return live != NULL;
}

// The loop is going away: nobody reads results any more.
static void stop(engine_owner *o) {
  (void)o;
  while (live) finish(live, "shutdown", 0);
  finished = NULL;
  pipe_pool_drain();
}

static engine_owner owner = {.round = post_finished, .tick = tick, .busy = busy, .stop = stop};
static engine_job request_job = {.run = requests};

// ---- called from the loop thread ---------------------------------------------------
void relay_init(relay *r, int a, int b, bool splice, int idle_ms, relay_done_fn *on_done) {
  memset(r, 0, sizeof *r);
  // Splice mode starts copying too: see SPLICE_AT.
  r->up = (relay_dir){.from = a, .to = b, .pipe = PIPE_NONE, .copy = true, .may_splice = splice};
  r->down = (relay_dir){.from = b, .to = a, .pipe = PIPE_NONE, .copy = true, .may_splice = splice};
  r->idle_ms = idle_ms;
  r->start_ms = r->last_ms = engine_now_ms();
  r->on_done = on_done;
}

void relay_set_limit(relay_dir *d, uint64_t limit) {
  d->limited = true;
  d->left = limit;
  if (limit == 0) {
    d->eof = true;
    d->nofin = true;
  }
}

void relay_set_initial(relay_dir *d, uint8_t *bytes, size_t len) {
  d->buf = bytes;
  d->off = 0;
  d->len = bytes ? len : 0;
}

int relay_engine_start(void) {
  if (eng) return 0;
  eng = engine_start("relay", SWEEP_MS);
  if (!eng) return -1;
  engine_add_owner(eng, &owner);
  return 0;
}

engine *relay_engine(void) {
  return eng;
}

// Loop thread only: relays from relay_start until relay_release.
static struct {
  relay *head;
  int active;
  double total;  // also the id of the latest relay
} started;

// The engine's queue batches the hand-over: one eventfd write per batch.
void relay_start(relay *r) {
  r->id = ++started.total;
  r->lprev = NULL;
  r->lnext = started.head;
  if (started.head) started.head->lprev = r;
  started.head = r;
  started.active++;
  r->start.run = adopt;
  engine_post(eng, &r->start);
}

void relay_release(relay *r) {
  if (r->lprev)
    r->lprev->lnext = r->lnext;
  else
    started.head = r->lnext;
  if (r->lnext) r->lnext->lprev = r->lprev;
  r->lprev = r->lnext = NULL;
  started.active--;
}

relay *relay_first(void) {
  return started.head;
}

int relay_active(void) {
  return started.active;
}

double relay_total(void) {
  return started.total;
}

// Ask the relay thread to close r, or every relay (r NULL); the request job
// is posted unless it is queued already.
static void request(relay *r) {
  if (!eng) return;
  pthread_mutex_lock(&shared.lock);
  if (r)
    r->abort = shared.abort_some = true;
  else
    shared.abort_all = true;
  bool post = !shared.requested;
  shared.requested = true;
  pthread_mutex_unlock(&shared.lock);
  if (post) engine_post(eng, &request_job);
}

void relay_abort_all(void) {
  request(NULL);
}

void relay_abort(relay *r) {
  request(r);
}

void relay_bytes(relay *r, uint64_t *up, uint64_t *down) {
  pthread_mutex_lock(&shared.lock);
  *up = r->shown_up;
  *down = r->shown_down;
  pthread_mutex_unlock(&shared.lock);
}

void relay_counters_get(relay_counters *out) {
  pthread_mutex_lock(&shared.lock);
  *out = shared.published;
  pthread_mutex_unlock(&shared.lock);
}

void relay_engine_stop(void) {
  if (!eng) return;
  engine_stop(eng);
  eng = NULL;
  started.head = NULL;  // their owners free them without releasing
  started.active = 0;
}
