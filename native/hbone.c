// HBONE tunnels on the relay's engine thread (see hbone.h). Everything here
// but the hbone_* entry points runs on that thread: the entry points only
// post jobs. A mesh connection's socket and every stream's socket are
// registered edge-triggered, so each handler reads until EAGAIN (or until the
// tunnel has no room: then the stream remembers it stopped, and `writable`
// or the drained output starts it again).
#define _GNU_SOURCE
#include "hbone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "h2.h"

#define SCRATCH_SIZE (64 * 1024)
#define RECORD_MAX 16384        // one TLS record: a write is never bigger
#define READ_MAX (64 * 1024)    // what one h2_recv takes at most: several records
#define OUT_HIGH (256 * 1024)   // h2 output above this: stop reading stream sockets
#define MAX_CLIENT_STREAMS 100  // per pooled connection, as ztunnel pools
#define STATS_MAX 256           // connections published for monitoring
#define CONTAINER(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

typedef struct hb_conn hb_conn;
typedef struct hb_stream hb_stream;

struct hb_stream {
  engine_handler h;  // the local socket
  hb_conn *c;
  hb_stream *prev, *next;  // c's streams
  uint32_t id;             // 0 until h2_open (client)
  int fd;                  // -1 until hbone_accept (server)
  uint64_t tag;
  bool watched;     // fd is in the engine's epoll set: bridging
  bool responded;   // client: the response came (HB_OPENED reported)
  bool rd_eof;      // the socket's EOF was read and END_STREAM sent
  bool rd_blocked;  // stopped reading the socket for lack of room in the tunnel
  bool drain;       // a FIN, error or urgent byte was seen: read to EAGAIN, even after a short read
  bool peer_end;    // END_STREAM received
  bool wr_shut;     // shutdown(SHUT_WR) done after peer_end
  bool h2_gone;     // the HTTP/2 stream is closed
  bool client;      // opened by hbone_open (reports HB_OPENED)
  bool dead;        // finished: freed after this round (an event may still name it)
  uint8_t *initial;  // server: bytes to send into the tunnel first (upstream proxy's rest)
  size_t initial_off, initial_len;
  uint8_t *out;  // tunnel → socket bytes not yet written (h2_consumed once written)
  size_t out_off, out_len, out_cap;
  uint64_t to_tunnel, to_socket;
  char *req;  // client, until h2_open: authority \0 baggage \0 forwarded \0 traceparent \0
  // Double HBONE: the id of the inner connection this (outer) stream carries; such a stream
  // reports nothing itself, its end closes the inner connection (relay_lost). 0 = none.
  uint64_t inner;
  int status;  // client: the peer's :status, 0 before it came
};

enum { C_CONNECTING, C_HANDSHAKE, C_OPEN };

struct hb_conn {
  engine_handler h;
  hb_conn *prev, *next;  // every connection
  uint64_t id;
  int fd;
  int state;
  bool server;
  bool goaway;           // no new streams (ours or the peer's GOAWAY)
  bool full;             // client: the peer's stream limit was met
  bool in_recv;          // inside h2_recv: closing waits for it to return
  bool out_full;         // h2 output above OUT_HIGH
  bool dead;             // closed: freed after this round (an event may still name it)
  bool reverse_ok;       // server: the listener lets a client ask for a reverse tunnel
  bool reverse;          // a reverse tunnel: HTTP/2 client iff TLS server
  bool refused;          // reverse, dialing side: the peer refused it (GOAWAY REFUSED_STREAM)
  bool held;             // reverse, accepting side: nothing sent until the embedder accepts it
  bool rev_up;           // reverse, dialing side: HB_REVERSE reported
  uint32_t goaway_code;  // what conn_close says in its GOAWAY
  hb_ping ping;          // this connection's keep-alive; 0 = hb's
  const char *closing;   // close once out of h2_recv, with this reason
  const hb_security *sec;
  void *cfg, *t;
  h2_conn *h2;
  hb_stream *streams;
  int nstreams;
  size_t retry_len;  // a write the transport asked to repeat with the same bytes
  double start_ms, active_ms, ping_ms, rtt_ms;
  uint64_t streams_total, to_tunnel, to_socket;
  char key[160], expect[160], peer_addr[64], peer_id[160];
  char expect_node[64];  // client: the peer's node id must be this ("" = any)
};

enum { J_SERVE, J_ACCEPT, J_REFUSE, J_OPEN, J_CLOSE_ALL, J_REVERSE, J_CLOSE, J_REVERSE_ACCEPT };

typedef struct {
  engine_job j;
  int kind;
  uint64_t tunnel;
  uint32_t id;
  int fd, status;
  const hb_security *sec;
  void *cfg;
  uint8_t *initial;
  size_t len;
  bool reverse_ok;     // J_SERVE
  hb_ping ping;        // J_REVERSE (expect in text)
  uint32_t code;       // J_CLOSE
  bool drain;          // J_CLOSE: let open streams finish
  const char *reason;  // J_CLOSE (static)
  hb_open_args open;   // J_OPEN: strings point into text
  char peer_addr[64];
  char text[];
} job;

static struct {
  engine *e;
  hb_sink_fn *sink;
  engine_owner owner;
  hb_conn *conns;
  hb_report *head, *tail;   // reports of this round
  hb_stream *dead_streams;  // finished in this round, linked through next
  hb_conn *dead_conns;
  uint32_t next_id;  // tunnel ids, from both threads: 32 bits stay lock-free on 32-bit MIPS
  int ping_ms, ping_timeout_ms, idle_ms, handshake_ms;
  bool stats_dirty;
  double stats_ms;
  pthread_mutex_t lock;  // guards the published stats
  int nstats;
} hb = {.ping_ms = 10000,
        .ping_timeout_ms = 20000,
        .idle_ms = 60000,
        .handshake_ms = 10000,
        .lock = PTHREAD_MUTEX_INITIALIZER};

static uint8_t scratch[SCRATCH_SIZE];
static hb_conn_stats stats[STATS_MAX];  // published under hb.lock; zeroed (.bss, not in the file)

static void conn_close(hb_conn *c, const char *reason);
static bool conn_flush(hb_conn *c);
static bool stream_pump_in(hb_stream *s);
static bool stream_pump_out(hb_stream *s);
static void open_on(hb_conn *c, hb_stream *s);
static hb_conn *conn_find(uint64_t id);

// ---- reports --------------------------------------------------------------------------
static hb_report *report_new(int kind, hb_conn *c, hb_stream *s, size_t text) {
  hb_report *r = calloc(1, sizeof *r + text);
  if (!r) return NULL;
  r->kind = kind;
  r->tunnel = c ? c->id : 0;
  r->stream = s ? s->id : 0;
  r->tag = s ? s->tag : 0;
  r->reason = "";
  if (c) snprintf(r->peer_addr, sizeof r->peer_addr, "%s", c->peer_addr);
  return r;
}

static void report_push(hb_report *r) {
  if (!r) return;  // out of memory: the embedder hears nothing of it
  if (hb.tail)
    hb.tail->next = r;
  else
    hb.head = r;
  hb.tail = r;
}

static void report_opened(hb_stream *s, int status, const char *reason) {
  if (s->responded || !s->client) return;
  s->responded = true;
  if (s->inner) return;  // an outer stream: its inner connection reports
  hb_report *r = report_new(HB_OPENED, s->c, s, 0);
  if (!r) return;
  r->status = status;
  r->reason = reason;
  report_push(r);
}

// ---- streams ----------------------------------------------------------------------------
static void stream_unlink(hb_stream *s) {
  hb_conn *c = s->c;
  if (s->prev)
    s->prev->next = s->next;
  else if (c->streams == s)
    c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  c->nstreams--;
  c->active_ms = engine_now_ms();
  hb.stats_dirty = true;
}

// An outer stream of double HBONE is over: the inner connection it carried
// cannot go on; the reason says how the relay answered.
static void relay_lost(hb_stream *s) {
  hb_conn *in = conn_find(s->inner);
  if (!in || in->closing) return;
  conn_close(in, s->status == 0     ? "relay-unreachable"
                 : s->status == 200 ? "relay-closed"
                 : s->status == 400 ? "relay-refused-400"
                 : s->status == 401 ? "relay-refused-401"
                 : s->status == 503 ? "relay-refused-503"
                                    : "relay-refused");
}

// The stream is over: close its socket (with a reset when rst), reset the
// HTTP/2 stream if it still lives, give back the window of bytes never
// written, report and free.
static void stream_finish(hb_stream *s, const char *reason, int err, bool rst) {
  hb_conn *c = s->c;
  if (s->fd >= 0) {
    if (rst) {
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fd);  // also leaves the epoll set
    s->fd = -1;
  }
  if (s->id) {
    if (!s->h2_gone) h2_reset(c->h2, s->id, err ? H2_CONNECT_ERROR : H2_CANCEL);
    if (s->out_len > s->out_off) h2_consumed(c->h2, s->id, s->out_len - s->out_off);
    h2_set_user(c->h2, s->id, NULL);
  }
  report_opened(s, 0, reason);
  hb_report *r = s->inner ? NULL : report_new(HB_DONE, c, s, 0);
  if (s->inner) relay_lost(s);
  if (r) {
    r->up = s->to_tunnel;
    r->down = s->to_socket;
    r->reason = reason;
    r->err = err;
    report_push(r);
  }
  stream_unlink(s);
  free(s->initial);
  free(s->out);
  free(s->req);
  s->initial = s->out = NULL;
  s->req = NULL;
  s->dead = true;
  s->next = hb.dead_streams;
  hb.dead_streams = s;
}

// Both directions are over: the socket's EOF went into the tunnel, the peer's
// END_STREAM reached the socket (every byte written, then SHUT_WR).
// These return false once s is finished (freed).
static bool stream_check_done(hb_stream *s) {
  if (!(s->rd_eof && s->wr_shut && s->h2_gone)) return true;
  stream_finish(s, "eof", 0, false);
  return false;
}

static bool stream_fail(hb_stream *s, const char *reason, int err) {
  stream_finish(s, reason, err, true);
  return false;
}

static void stream_event(engine_handler *h, uint32_t events) {
  hb_stream *s = CONTAINER(h, hb_stream, h);
  if (s->dead) return;
  hb_conn *c = s->c;
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      stream_fail(s, "socket-error", err);
      conn_flush(c);
      return;
    }
  }
  // The relay closed its end of the socket pair without passing a FIN first: a reset.
  if (engine_unix_aborted(s->fd, events, s->wr_shut)) {
    stream_fail(s, "socket-error", ECONNRESET);
    conn_flush(c);
    return;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) s->drain = true;
  // Out first: a write error ends the stream before reading matters.
  bool alive = true;
  if (s->out_len > s->out_off || (s->peer_end && !s->wr_shut)) alive = stream_pump_out(s);
  if (alive) stream_pump_in(s);
  conn_flush(c);
}

// Register the socket: the engine reports its first readiness at once.
static bool stream_bridge(hb_stream *s) {
  s->h.on_event = stream_event;
  if (engine_watch(hb.e, s->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET, &s->h) < 0)
    return stream_fail(s, "socket-error", errno);
  s->watched = true;
  return true;
}

// Bytes the tunnel delivered: straight to the socket when nothing waits
// before them, the rest kept until EPOLLOUT.
static void stream_deliver(hb_stream *s, const uint8_t *p, size_t n) {
  hb_conn *c = s->c;
  if (s->watched && s->out_len == s->out_off) {
    while (n > 0) {
      ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) break;
      if (w <= 0) {
        h2_consumed(c->h2, s->id, n);
        stream_fail(s, "socket-error", w < 0 ? errno : EPIPE);
        return;
      }
      p += w, n -= (size_t)w;
      s->to_socket += w;
      c->to_socket += w;
      h2_consumed(c->h2, s->id, (size_t)w);
    }
    if (n == 0) return;
  }
  if (s->out_off > 0 && s->out_off == s->out_len) s->out_off = s->out_len = 0;
  if (s->out_len + n > s->out_cap) {
    size_t cap = s->out_cap ? s->out_cap : 16384;
    while (cap < s->out_len + n) cap *= 2;
    uint8_t *b = realloc(s->out, cap);
    if (!b) {
      h2_consumed(c->h2, s->id, n);
      stream_fail(s, "out-of-memory", ENOMEM);
      return;
    }
    s->out = b;
    s->out_cap = cap;
  }
  memcpy(s->out + s->out_len, p, n);
  s->out_len += n;
}

// Write what the tunnel delivered earlier; after the peer's END_STREAM and the
// last byte, half-close the socket. May finish (free) s.
static bool stream_pump_out(hb_stream *s) {
  hb_conn *c = s->c;
  if (!s->watched) return true;
  while (s->out_off < s->out_len) {
    ssize_t w =
        send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return true;
    if (w <= 0) return stream_fail(s, "socket-error", w < 0 ? errno : EPIPE);
    s->out_off += (size_t)w;
    s->to_socket += w;
    c->to_socket += w;
    if (s->id) h2_consumed(c->h2, s->id, (size_t)w);
  }
  s->out_off = s->out_len = 0;
  if (s->peer_end && !s->wr_shut) {
    shutdown(s->fd, SHUT_WR);
    s->wr_shut = true;
  }
  return stream_check_done(s);
}

// Move socket bytes into the tunnel as far as its windows allow. May finish s.
static bool stream_pump_in(hb_stream *s) {
  hb_conn *c = s->c;
  if (!s->watched || s->rd_eof || c->state != C_OPEN) return true;
  s->rd_blocked = false;
  for (;;) {
    size_t room = h2_send_room(c->h2, s->id), queued;
    // Checked per read, not only per flush: one pass could otherwise queue a
    // whole stream window (4 MiB), and h2 refuses to queue a PING or SETTINGS
    // ACK behind more than 1 MiB (the peer then sees ENHANCE_YOUR_CALM).
    h2_output(c->h2, &queued);
    if (queued > OUT_HIGH) c->out_full = true;
    if (room == 0 || c->out_full) {
      s->rd_blocked = true;
      return true;
    }
    if (s->initial_off < s->initial_len) {
      size_t k = s->initial_len - s->initial_off < room ? s->initial_len - s->initial_off : room;
      ssize_t n = h2_send(c->h2, s->id, s->initial + s->initial_off, k, false);
      if (n < 0) return stream_fail(s, "tunnel-error", 0);
      s->initial_off += (size_t)n;
      s->to_tunnel += n;
      c->to_tunnel += n;
      continue;
    }
    size_t want = room < SCRATCH_SIZE ? room : SCRATCH_SIZE;
    ssize_t n = recv(s->fd, scratch, want, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n < 0) return stream_fail(s, "socket-error", errno);
    if (n == 0) {
      s->rd_eof = true;
      if (h2_send(c->h2, s->id, NULL, 0, true) < 0) return stream_fail(s, "tunnel-error", 0);
      if (s->peer_end) s->h2_gone = true;  // our END completed the stream
      return stream_check_done(s);
    }
    if (h2_send(c->h2, s->id, scratch, (size_t)n, false) != n)
      return stream_fail(s, "tunnel-error", 0);
    s->to_tunnel += n;
    c->to_tunnel += n;
    // A short read emptied the socket: bytes arriving later raise a new edge, so
    // no recv is needed just to see EAGAIN (as relay.c's copy). Not so once a FIN,
    // error or urgent byte was seen: a recv stops short of those and must go on.
    if ((size_t)n < want && !s->drain) return true;
  }
}

// ---- HTTP/2 events ---------------------------------------------------------------------
static hb_stream *stream_new(hb_conn *c) {
  hb_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->c = c;
  s->fd = -1;
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  c->nstreams++;
  c->streams_total++;
  hb.stats_dirty = true;
  return s;
}

static size_t copy_field(char *dst, const char *p, size_t n) {
  memcpy(dst, p, n);
  dst[n] = 0;
  return n + 1;
}

static void on_request(void *ctx, uint32_t id, const char *auth, size_t auth_len,
                       const struct h2_header *h, int n) {
  hb_conn *c = ctx;
  if (c->goaway) {
    h2_reset(c->h2, id, H2_REFUSED_STREAM);
    return;
  }
  const char *want[3] = {"baggage", "forwarded", "traceparent"};
  const struct h2_header *found[3] = {0};
  size_t text = auth_len + 1 + strlen(c->peer_id) + 1 + 1;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 3; k++)
      if (h[i].name_len == strlen(want[k]) && !memcmp(h[i].name, want[k], h[i].name_len) &&
          !found[k]) {
        found[k] = &h[i];
        text += h[i].value_len;
      }
  const char *node = c->sec->peer_node(c->t);
  text += 3 + strlen(node) + 1;
  hb_stream *s = stream_new(c);
  hb_report *r = s ? report_new(HB_REQUEST, c, NULL, text) : NULL;
  if (!r) {
    if (s) {
      s->id = id;
      stream_finish(s, "out-of-memory", ENOMEM, true);
    } else {
      h2_reset(c->h2, id, H2_INTERNAL_ERROR);
    }
    return;
  }
  s->id = id;
  h2_set_user(c->h2, id, s);
  r->stream = id;
  char *p = r->text;
  r->authority = p;
  p += copy_field(p, auth, auth_len);
  const char **slot[3] = {&r->baggage, &r->forwarded, &r->traceparent};
  for (int k = 0; k < 3; k++) {
    *slot[k] = p;
    p += found[k] ? copy_field(p, found[k]->value, found[k]->value_len) : copy_field(p, "", 0);
  }
  r->peer_id = p;
  p += copy_field(p, c->peer_id, strlen(c->peer_id));
  r->peer_node = p;
  copy_field(p, node, strlen(node));
  report_push(r);
}

static void on_response(void *ctx, uint32_t id, int status, const struct h2_header *h, int n) {
  (void)h, (void)n;
  hb_conn *c = ctx;
  hb_stream *s = h2_user(c->h2, id);
  if (!s) return;
  s->status = status;
  report_opened(s, status, status == 200 ? "" : "refused");
  if (status != 200) return stream_finish(s, "refused", 0, true);
  stream_bridge(s);
}

static void on_data(void *ctx, uint32_t id, const uint8_t *p, size_t n) {
  hb_conn *c = ctx;
  hb_stream *s = h2_user(c->h2, id);
  if (!s) return h2_consumed(c->h2, id, n);
  stream_deliver(s, p, n);
}

static void on_end(void *ctx, uint32_t id) {
  hb_conn *c = ctx;
  hb_stream *s = h2_user(c->h2, id);
  if (!s) return;
  s->peer_end = true;
  if (s->watched) stream_pump_out(s);  // half-closes once every byte is out
}

static void on_closed(void *ctx, uint32_t id, uint32_t code, bool remote) {
  hb_conn *c = ctx;
  hb_stream *s = c->streams;  // h2 forgot the stream (and its user pointer) already
  while (s && s->id != id) s = s->next;
  if (!s) return;
  s->h2_gone = true;
  if (code == H2_NO_ERROR) {
    stream_check_done(s);
    return;
  }
  if (code == H2_REFUSED_STREAM && !s->responded)
    return stream_finish(s, "refused-stream", 0, true);
  stream_finish(s, remote ? "peer-reset" : "protocol-error", 0, true);
}

// Streams that stopped for room try again (id 0: the connection's window opened).
static void resume_blocked(hb_conn *c, uint32_t id) {
  for (hb_stream *s = c->streams, *next; s; s = next) {
    next = s->next;
    if (s->rd_blocked && (id == 0 || s->id == id)) stream_pump_in(s);
    if (c->out_full) break;
  }
}

static void on_writable(void *ctx, uint32_t id) {
  resume_blocked(ctx, id);
}

static void on_goaway(void *ctx, uint32_t last_id, uint32_t code) {
  (void)last_id;
  hb_conn *c = ctx;
  c->goaway = true;  // out of the pool; closed once its streams are over
  if (c->reverse && !c->server && code == H2_REFUSED_STREAM) c->refused = true;
  hb.stats_dirty = true;
}

// A PING's payload: when it left, in µs of the fine clock (engine_now_ms is the
// coarse one, ticks of 1-10 ms: a LAN round trip would read as 0 or a tick).
static uint64_t ping_clock_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_pong(void *ctx, uint64_t payload) {
  hb_conn *c = ctx;
  c->rtt_ms = (double)(ping_clock_us() - payload) / 1000.0;
  c->ping_ms = engine_now_ms();
}

static const struct h2_events events = {
    .request = on_request,
    .response = on_response,
    .data = on_data,
    .end = on_end,
    .closed = on_closed,
    .writable = on_writable,
    .goaway = on_goaway,
    .pong = on_pong,
};

// ---- connections -------------------------------------------------------------------------
static void conn_free(hb_conn *c) {
  const char *detail = c->t ? c->sec->error(c->t) : "";
  hb_report *r = report_new(HB_CLOSED, c, NULL, strlen(detail) + 1);
  if (r) {
    r->detail = r->text;
    memcpy(r->text, detail, strlen(detail) + 1);
    r->reason = c->closing ? c->closing : "closed";
    r->up = c->to_tunnel;
    r->down = c->to_socket;
    r->status = (int)c->streams_total;
    report_push(r);
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    hb.conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->t) c->sec->conn_free(c->t);
  if (c->fd >= 0) close(c->fd);
  h2_free(c->h2);
  c->sec->cfg_unref(c->cfg);
  c->t = NULL;
  c->h2 = NULL;
  c->fd = -1;
  hb.stats_dirty = true;
  c->dead = true;
  c->next = hb.dead_conns;
  hb.dead_conns = c;
}

// Reset every stream (their sockets get an RST), try to say GOAWAY, free c.
static void conn_close(hb_conn *c, const char *reason) {
  if (c->in_recv) {
    if (!c->closing) c->closing = reason;
    return;
  }
  c->closing = reason;  // from here on flushes are over
  while (c->streams) stream_fail(c->streams, reason, 0);
  if (c->state == C_OPEN && c->retry_len == 0) {
    h2_goaway(c->h2, c->goaway_code);
    size_t len;
    const uint8_t *p = h2_output(c->h2, &len);
    if (len > 0) c->sec->write(c->t, p, len < RECORD_MAX ? len : RECORD_MAX);  // best effort
    if (c->sec->flush) c->sec->flush(c->t);
  }
  conn_free(c);
}

// Send what h2 queued, one record at a time, until the transport waits.
// False once c is closed (a write failed).
static bool conn_flush(hb_conn *c) {
  if (c->state != C_OPEN || c->closing || c->held) return true;
  for (;;) {
    size_t len = 0;
    for (;;) {
      const uint8_t *p = h2_output(c->h2, &len);
      if (len == 0) break;
      size_t n = c->retry_len ? c->retry_len : len < RECORD_MAX ? len : RECORD_MAX;
      ssize_t w = c->sec->write(c->t, p, n);
      if (w == HB_WANT_WRITE || w == HB_WANT_READ) {
        c->retry_len = n;
        break;
      }
      if (w <= 0) return conn_close(c, "tunnel-error"), false;
      c->retry_len = 0;
      h2_output_done(c->h2, (size_t)w);
    }
    if (c->sec->flush) {
      int r = c->sec->flush(c->t);
      if (r < 0 && r != HB_WANT_WRITE) return conn_close(c, "tunnel-error"), false;
    }
    bool was_full = c->out_full;
    c->out_full = len > OUT_HIGH;
    if (!was_full || c->out_full) return true;
    resume_blocked(c, 0);  // then send what they queued
  }
}

// HB_REVERSE: the other gate's SPIFFE id and node id.
static void report_reverse(hb_conn *c) {
  const char *node = c->sec->peer_node(c->t);
  size_t li = strlen(c->peer_id) + 1, ln = strlen(node) + 1;
  hb_report *r = report_new(HB_REVERSE, c, NULL, li + ln);
  if (!r) return;
  r->peer_id = r->text;
  memcpy(r->text, c->peer_id, li);
  r->peer_node = r->text + li;
  memcpy(r->text + li, node, ln);
  report_push(r);
}

static const char *goaway_reason(const hb_conn *c) {
  return c->refused ? "reverse-refused" : "goaway";
}

// Read and process until the transport waits; false once c is closed (freed).
static bool conn_read(hb_conn *c) {
  static uint8_t buf[READ_MAX];
  for (;;) {
    // Several records at once: a DATA frame's bytes then go to its socket in one send.
    size_t got = 0;
    ssize_t n = 0;
    while (got < sizeof buf && (n = c->sec->read(c->t, buf + got, sizeof buf - got)) > 0)
      got += (size_t)n;
    // What ended the reads (n: a wait, EOF, an error) is handled after the bytes before it.
    if (got > 0) {
      c->in_recv = true;
      int err = h2_recv(c->h2, buf, got);
      c->in_recv = false;
      if (c->closing) return conn_close(c, c->closing), false;
      if (err) {
        conn_flush(c);  // the GOAWAY h2 queued, best effort
        return conn_close(c, "protocol-error"), false;
      }
      // Streams opened or ended in this read may have finished the last one after a GOAWAY.
      if (c->goaway && c->nstreams == 0) return conn_close(c, goaway_reason(c)), false;
      // The dialing side of a reverse tunnel is up once the accepting side speaks HTTP/2: it
      // sends nothing until it accepted the registration (a refusal comes with its GOAWAY).
      if (c->reverse && !c->server && !c->rev_up && !c->goaway && h2_peer_settings(c->h2)) {
        c->rev_up = true;
        report_reverse(c);
      }
    }
    if (n > 0) continue;  // the buffer was full
    if (n == HB_WANT_READ || n == HB_WANT_WRITE) return true;
    if (n == HB_EOF || n == 0) return conn_close(c, "tunnel-closed"), false;
    return conn_close(c, "tunnel-error"), false;
  }
}

// The agreed ALPN decides a reverse tunnel: the dialing side insists on it;
// a listener that allows it swaps its HTTP/2 engine to the client role (its
// server preface was never sent: nothing is flushed before the handshake).
// False once c is closed.
static bool conn_reverse(hb_conn *c) {
  const char *alpn = c->sec->alpn ? c->sec->alpn(c->t) : "h2";
  bool agreed = !strcmp(alpn, HB_ALPN_REVERSE);
  if (c->reverse && !agreed) return conn_close(c, "reverse-unsupported"), false;
  if (!c->server || !agreed) return true;
  h2_free(c->h2);
  c->h2 = h2_new(false, NULL, &events, c);
  if (!c->h2) return conn_close(c, "out-of-memory"), false;
  c->reverse = true;
  c->held = true;  // until hbone_reverse_accept (or hbone_close refuses it)
  return true;
}

static bool conn_ready(hb_conn *c) {
  snprintf(c->peer_id, sizeof c->peer_id, "%s", c->sec->peer_id(c->t));
  // The node a name named (double HBONE): its key, not only a certificate of the mesh.
  if (c->expect_node[0] && strcmp(c->sec->peer_node(c->t), c->expect_node))
    return conn_close(c, "node-mismatch"), false;
  if (!conn_reverse(c)) return false;  // before C_OPEN: closed without a GOAWAY
  c->state = C_OPEN;
  c->ping_ms = c->active_ms = engine_now_ms();
  hb.stats_dirty = true;
  if (c->reverse && c->server) report_reverse(c);
  // Client: the streams that waited for the handshake.
  for (hb_stream *s = c->streams, *next; s; s = next) {
    next = s->next;
    if (!s->id && s->req) open_on(c, s);
  }
  return true;
}

static void conn_on_event(engine_handler *h, uint32_t events) {
  hb_conn *c = CONTAINER(h, hb_conn, h);
  if (c->dead) return;
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) return conn_close(c, "connect-error");
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    c->state = C_HANDSHAKE;
  }
  if (c->state == C_HANDSHAKE) {
    int r = c->sec->handshake(c->t);
    if (r == HB_WANT_READ || r == HB_WANT_WRITE) return;
    if (r != 0) return conn_close(c, "handshake-error");
    if (!conn_ready(c)) return;
  }
  if (conn_flush(c) && conn_read(c))
    conn_flush(c);  // what the events queued (WINDOW_UPDATE, ACKs, data)
}

// mode: a plain HBONE connection, a server that allows reverse tunnels, or
// the dialing side of a reverse tunnel.
enum { M_PLAIN, M_REVERSE_OK, M_REVERSE };

static hb_conn *conn_new(uint64_t id, int fd, bool server, const hb_security *sec, void *cfg,
                         const char *expect, int mode) {
  hb_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->server = server;
  c->sec = sec;
  c->cfg = cfg;
  sec->cfg_ref(cfg);
  c->id = id;
  c->rtt_ms = -1;
  c->start_ms = c->active_ms = engine_now_ms();
  c->h.on_event = conn_on_event;
  if (expect) snprintf(c->expect, sizeof c->expect, "%s", expect);
  c->reverse_ok = mode == M_REVERSE_OK;
  c->reverse = mode == M_REVERSE;
  c->goaway_code = H2_NO_ERROR;
  c->h2 = h2_new(server != c->reverse, NULL, &events, c);
  void *(*tnew)(void *, int, bool, const char *) =
      mode == M_PLAIN ? sec->conn_new : sec->conn_new_reverse;
  c->t = c->h2 && tnew ? tnew(cfg, fd, server, expect && *expect ? c->expect : NULL) : NULL;
  c->next = hb.conns;
  if (hb.conns) hb.conns->prev = c;
  hb.conns = c;
  hb.stats_dirty = true;
  return c;
}

// ---- client: the pool --------------------------------------------------------------------
// h2_open for s on c (open now). The peer's own limit may be lower than ours:
// then c is full and s goes to another connection.
static void open_on(hb_conn *c, hb_stream *s) {
  const char *auth = s->req;
  const char *vals[3];
  const char *p = auth + strlen(auth) + 1;
  for (int k = 0; k < 3; k++) vals[k] = p, p += strlen(p) + 1;
  static const char *names[3] = {"baggage", "forwarded", "traceparent"};
  struct h2_header h[3];
  int n = 0;
  for (int k = 0; k < 3; k++)
    if (*vals[k]) h[n++] = (struct h2_header){names[k], vals[k], strlen(names[k]), strlen(vals[k])};
  int64_t id = h2_open(c->h2, auth, h, n);
  if (id > 0) {
    s->id = (uint32_t)id;
    h2_set_user(c->h2, s->id, s);
    free(s->req);
    s->req = NULL;
    return;
  }
  stream_fail(s,
              id == H2_E_ARG    ? "bad-request"
              : id == H2_E_BUSY ? "tunnel-busy"
                                : "tunnel-error",
              0);
}

static hb_conn *pool_find(const char *key) {
  for (hb_conn *c = hb.conns; c; c = c->next)
    if (!c->server && !c->reverse && !c->goaway && !c->full && !c->closing &&
        c->nstreams < MAX_CLIENT_STREAMS && !strcmp(c->key, key))
      return c;
  return NULL;
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
  }
}

// A new pooled connection to a->peer; its connect is under way. NULL when
// none could be made (then nothing is left open).
static hb_conn *pool_dial(const hb_open_args *a, const hb_security *sec, void *cfg) {
  int fd = socket(a->peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  hb_conn *c = conn_new(__atomic_add_fetch(&hb.next_id, 1, __ATOMIC_RELAXED), fd, false, sec, cfg,
                        a->expect, M_PLAIN);
  if (!c) {
    close(fd);
    return NULL;
  }
  snprintf(c->key, sizeof c->key, "%s", a->key);
  c->ping = a->ping;
  peer_text(&a->peer, c->peer_addr, sizeof c->peer_addr);
  if (a->mark) setsockopt(fd, SOL_SOCKET, SO_MARK, &a->mark, sizeof a->mark);
  // As every socket of ours: the records are batched here (tls_batch), and a
  // flush's tail must not wait for an ACK.
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = C_CONNECTING;
  if (!c->h2 || !c->t) {
    conn_free(c);
    return NULL;
  }
  return c;
}

// A reverse tunnel a client stream may go on: the peer dialed us, roles swapped, open.
static hb_conn *reverse_find(uint64_t id) {
  hb_conn *c = conn_find(id);
  return c && c->reverse && c->server && c->state == C_OPEN && !c->goaway && !c->closing ? c : NULL;
}

// No stream object to carry the reports of a->tag: make them here.
static void open_failed(const hb_open_args *a, const char *why, int err) {
  hb_report *r = report_new(HB_OPENED, NULL, NULL, 0), *d = report_new(HB_DONE, NULL, NULL, 0);
  if (r) r->tag = a->tag, r->reason = why, report_push(r);
  if (d) d->tag = a->tag, d->reason = why, d->err = err, report_push(d);
  close(a->fd);
}

// A stream for a: on a reverse tunnel, a pooled connection, or a new one
// (never dialed for a double HBONE open: its connection is made by
// do_open_via). inner: the outer stream of that inner connection.
static void open_stream(const hb_open_args *a, const hb_security *sec, void *cfg, uint64_t inner) {
  hb_conn *c = a->tunnel ? reverse_find(a->tunnel) : pool_find(a->key);
  bool fresh = !c && !a->tunnel && !a->via_key;
  if (fresh) c = pool_dial(a, sec, cfg);
  if (!c) {
    if (inner) {
      hb_conn *in = conn_find(inner);
      if (in) conn_close(in, "relay-unreachable");
      close(a->fd);
      return;
    }
    return open_failed(a,
                       a->tunnel    ? "tunnel-gone"
                       : a->via_key ? "relay-unreachable"
                                    : "tunnel-error",
                       a->tunnel || a->via_key ? 0 : errno);
  }
  hb_stream *s = stream_new(c);
  if (s) s->inner = inner;
  size_t la = strlen(a->authority) + 1, lb = strlen(a->baggage) + 1, lf = strlen(a->forwarded) + 1,
         lt = strlen(a->traceparent) + 1;
  char *req = s ? malloc(la + lb + lf + lt) : NULL;
  if (!req) {
    close(a->fd);
    hb_conn *in = s || !inner ? NULL : conn_find(inner);
    if (in) conn_close(in, "out-of-memory");
    if (s) stream_fail(s, "out-of-memory", ENOMEM);
    if (fresh) conn_close(c, "out-of-memory");
    return;
  }
  s->fd = a->fd;
  s->tag = a->tag;
  s->client = true;
  s->req = req;
  memcpy(req, a->authority, la);
  memcpy(req + la, a->baggage, lb);
  memcpy(req + la + lb, a->forwarded, lf);
  memcpy(req + la + lb + lf, a->traceparent, lt);
  if (fresh) {
    if (a->expect_node) snprintf(c->expect_node, sizeof c->expect_node, "%s", a->expect_node);
    int rc = connect(c->fd, (struct sockaddr *)&a->peer, a->peer_len);
    if (rc < 0 && errno != EINPROGRESS) return conn_close(c, "connect-error");
    if (engine_watch(hb.e, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->h) < 0)
      return conn_close(c, "tunnel-error");
  } else if (c->state == C_OPEN) {
    open_on(c, s);
    conn_flush(c);
  }
}

// Double HBONE: unless a connection to the node (pool key a->key) has room,
// make one whose transport is a socket pair; the pair's other end is bridged
// to a CONNECT stream on the relay's pool (authority: the node's HBONE
// endpoint). TLS and HTTP/2 to the node run inside that stream.
static void do_open_via(job *j) {
  hb_open_args *a = &j->open;
  if (pool_find(a->key)) return open_stream(a, j->sec, j->cfg, 0);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return open_failed(a, "tunnel-error", errno);
  hb_conn *in = conn_new(__atomic_add_fetch(&hb.next_id, 1, __ATOMIC_RELAXED), sv[0], false, j->sec,
                         j->cfg, a->expect, M_PLAIN);
  if (!in) {
    close(sv[0]), close(sv[1]);
    return open_failed(a, "out-of-memory", ENOMEM);
  }
  snprintf(in->key, sizeof in->key, "%s", a->key);
  in->ping = a->ping;
  if (a->expect_node) snprintf(in->expect_node, sizeof in->expect_node, "%s", a->expect_node);
  char relay[48];
  peer_text(&a->via_peer, relay, sizeof relay);
  snprintf(in->peer_addr, sizeof in->peer_addr, "via %s", relay);
  in->state = C_HANDSHAKE;
  if (!in->h2 || !in->t ||
      engine_watch(hb.e, in->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &in->h) < 0) {
    conn_close(in, "tunnel-error");
    close(sv[1]);
    return open_failed(a, "tunnel-error", 0);
  }
  hb_open_args o = *a;
  o.key = a->via_key;
  o.peer = a->via_peer;
  o.peer_len = a->via_peer_len;
  o.expect = a->via_expect;
  o.authority = a->via_authority;
  o.expect_node = o.via_key = NULL;
  o.fd = sv[1];
  o.tag = 0;
  o.tunnel = 0;
  open_stream(&o, j->sec, j->cfg, in->id);  // may close `in` at once (relay unreachable)
  open_stream(a, j->sec, j->cfg, 0);        // on `in`, or refused as relay-unreachable
}

static void do_open(job *j) {
  if (j->open.via_key) return do_open_via(j);
  open_stream(&j->open, j->sec, j->cfg, 0);
}

// ---- server ---------------------------------------------------------------------------
static hb_conn *conn_find(uint64_t id) {
  for (hb_conn *c = hb.conns; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static void do_serve(job *j) {
  hb_conn *c = conn_new(j->tunnel, j->fd, true, j->sec, j->cfg, NULL,
                        j->reverse_ok ? M_REVERSE_OK : M_PLAIN);  // the id hbone_serve returned
  if (!c) {
    close(j->fd);
    return;
  }
  snprintf(c->peer_addr, sizeof c->peer_addr, "%s", j->peer_addr);
  c->ping = j->ping;
  c->state = C_HANDSHAKE;
  if (!c->h2 || !c->t ||
      engine_watch(hb.e, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->h) < 0)
    conn_close(c, "tunnel-error");
}

// The dialing side of a reverse tunnel: its socket is connected already.
static void do_reverse(job *j) {
  hb_conn *c = conn_new(j->tunnel, j->fd, false, j->sec, j->cfg, j->text, M_REVERSE);
  if (!c) {
    close(j->fd);
    return;
  }
  snprintf(c->peer_addr, sizeof c->peer_addr, "%s", j->peer_addr);
  c->ping = j->ping;
  c->state = C_HANDSHAKE;
  if (!c->h2 || !c->t ||
      engine_watch(hb.e, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->h) < 0)
    conn_close(c, "tunnel-error");
}

static void do_reverse_accept(job *j) {
  hb_conn *c = conn_find(j->tunnel);
  if (!c || !c->held || c->closing) return;
  c->held = false;
  hb.stats_dirty = true;
  conn_flush(c);  // the preface and SETTINGS: the dialing side is up
}

static void do_close(job *j) {
  hb_conn *c = conn_find(j->tunnel);
  if (!c || c->closing) return;
  c->goaway_code = j->code;
  if (j->drain && c->state == C_OPEN && c->nstreams > 0) {
    // No new streams; the tick closes it once the last one is over.
    h2_goaway(c->h2, j->code);
    c->goaway = true;
    hb.stats_dirty = true;
    conn_flush(c);
    return;
  }
  conn_close(c, j->reason);
}

static void do_accept(job *j) {
  hb_conn *c = conn_find(j->tunnel);
  hb_stream *s = c ? h2_user(c->h2, j->id) : NULL;
  if (!s || s->watched) {  // gone meanwhile: its HB_DONE is on its way
    close(j->fd);
    free(j->initial);
    return;
  }
  s->fd = j->fd;
  s->initial = j->initial;
  s->initial_len = j->len;
  if (h2_respond(c->h2, s->id, 200, NULL, 0) < 0) {
    stream_fail(s, "tunnel-error", 0);
  } else if (stream_bridge(s) && s->peer_end && s->out_len == s->out_off) {
    stream_pump_out(s);  // the client half-closed before the answer: pass it on
  }
  conn_flush(c);
}

static void do_refuse(job *j) {
  hb_conn *c = conn_find(j->tunnel);
  hb_stream *s = c ? h2_user(c->h2, j->id) : NULL;
  if (!s || s->watched) return;
  h2_respond(c->h2, s->id, j->status, NULL,
             0);  // ends the stream: END_STREAM, RST(NO_ERROR) if needed
  s->h2_gone = true;
  stream_finish(s, "refused", 0, false);
  conn_flush(c);
}

// ---- the engine's hooks ----------------------------------------------------------------
static void run_job(engine_job *ej) {
  job *j = CONTAINER(ej, job, j);
  switch (j->kind) {
    case J_SERVE:
      do_serve(j);
      break;
    case J_ACCEPT:
      do_accept(j);
      break;
    case J_REFUSE:
      do_refuse(j);
      break;
    case J_OPEN:
      do_open(j);
      break;
    case J_CLOSE_ALL:
      while (hb.conns) conn_close(hb.conns, "shutdown");
      break;
    case J_REVERSE:
      do_reverse(j);
      break;
    case J_CLOSE:
      do_close(j);
      break;
    case J_REVERSE_ACCEPT:
      do_reverse_accept(j);
      break;
  }
  if (j->sec) j->sec->cfg_unref(j->cfg);
  free(j);
}

static void publish(double now) {
  pthread_mutex_lock(&hb.lock);
  int n = 0;
  for (hb_conn *c = hb.conns; c && n < STATS_MAX; c = c->next, n++) {
    hb_conn_stats *o = &stats[n];
    o->id = c->id;
    o->server = c->server;
    o->reverse = c->reverse;
    snprintf(o->peer_addr, sizeof o->peer_addr, "%s", c->peer_addr);
    snprintf(o->peer_id, sizeof o->peer_id, "%s", c->peer_id);
    snprintf(o->key, sizeof o->key, "%s", c->key);
    o->streams = c->nstreams;
    o->streams_total = c->streams_total;
    o->bytes_up = c->to_tunnel;
    o->bytes_down = c->to_socket;
    o->rtt_ms = c->rtt_ms;
    o->age_ms = now - c->start_ms;
    o->state = c->state != C_OPEN ? "handshake"
               : c->held          ? "pending"
               : c->goaway        ? "closing"
                                  : "open";
  }
  hb.nstats = n;
  pthread_mutex_unlock(&hb.lock);
  hb.stats_dirty = false;
  hb.stats_ms = now;
}

static void on_round(engine_owner *o) {
  (void)o;
  // No event of this round can name them any more.
  for (hb_stream *s; (s = hb.dead_streams);) hb.dead_streams = s->next, free(s);
  for (hb_conn *c; (c = hb.dead_conns);) hb.dead_conns = c->next, free(c);
  if (hb.stats_dirty) publish(engine_now_ms());
  hb_report *batch = hb.head;
  hb.head = hb.tail = NULL;
  if (batch) hb.sink(batch);
}

// PINGs from the client side, dead peers, handshake and idle timeouts.
static void on_tick(engine_owner *o, double now) {
  (void)o;
  for (hb_conn *c = hb.conns, *next; c; c = next) {
    next = c->next;
    if (c->state != C_OPEN) {
      if (now - c->start_ms >= hb.handshake_ms) conn_close(c, "handshake-timeout");
      continue;
    }
    // A reverse tunnel waits for streams as long as it lives.
    if (c->nstreams == 0 && (c->goaway || (!c->reverse && now - c->active_ms >= hb.idle_ms))) {
      conn_close(c, c->goaway ? goaway_reason(c) : "idle");
      continue;
    }
    // The client side PINGs; both ends of a reverse tunnel do (each must notice a dead peer).
    if (c->server && !c->reverse) continue;
    if (h2_ping_pending(c->h2)) {
      if (now - c->ping_ms >= (c->ping.timeout_ms > 0 ? c->ping.timeout_ms : hb.ping_timeout_ms))
        conn_close(c, "ping-timeout");
      continue;
    }
    if (now - c->ping_ms >= (c->ping.every_ms > 0 ? c->ping.every_ms : hb.ping_ms)) {
      c->ping_ms = now;
      h2_ping(c->h2, ping_clock_us());
      conn_flush(c);
    }
  }
  if (now - hb.stats_ms >= 1000) publish(now);
}

static bool is_busy(engine_owner *o) {
  (void)o;
  return hb.conns != NULL;
}

static void on_stop(engine_owner *o) {
  (void)o;
  while (hb.conns) conn_close(hb.conns, "shutdown");
  for (hb_report *r = hb.head, *next; r; r = next) next = r->next, free(r);
  hb.head = hb.tail = NULL;
  for (hb_stream *s; (s = hb.dead_streams);) hb.dead_streams = s->next, free(s);
  for (hb_conn *c; (c = hb.dead_conns);) hb.dead_conns = c->next, free(c);
}

// ---- entry points (any thread) ------------------------------------------------------------
void hbone_init(engine *e, hb_sink_fn *sink) {
  hb.e = e;
  hb.sink = sink;
  hb.owner = (engine_owner){.round = on_round, .tick = on_tick, .busy = is_busy, .stop = on_stop};
  engine_add_owner(e, &hb.owner);
}

void hbone_set_timing(int ping_ms, int ping_timeout_ms, int idle_ms, int handshake_ms) {
  hb.ping_ms = ping_ms;
  hb.ping_timeout_ms = ping_timeout_ms;
  hb.idle_ms = idle_ms;
  hb.handshake_ms = handshake_ms;
}

static job *job_new(int kind, size_t text) {
  job *j = calloc(1, sizeof *j + text);
  if (!j) return NULL;
  j->kind = kind;
  j->j.run = run_job;
  j->fd = -1;
  return j;
}

static void post(job *j) {
  engine_post(hb.e, &j->j);
}

// A job handing a connected socket to the engine as a new tunnel (its id
// chosen here); NULL, with fd closed, when out of memory.
static job *tunnel_job(int kind, size_t text, int fd, const hb_security *sec, void *cfg,
                       const char *peer_addr) {
  job *j = job_new(kind, text);
  if (!j) {
    close(fd);
    return NULL;
  }
  j->fd = fd;
  j->tunnel = __atomic_add_fetch(&hb.next_id, 1, __ATOMIC_RELAXED);
  j->sec = sec;
  j->cfg = cfg;
  sec->cfg_ref(cfg);  // until the job ran (the connection takes its own)
  snprintf(j->peer_addr, sizeof j->peer_addr, "%s", peer_addr);
  return j;
}

uint64_t hbone_serve(int fd, const hb_security *sec, void *cfg, const char *peer_addr,
                     bool reverse_ok, hb_ping ping) {
  job *j = tunnel_job(J_SERVE, 0, fd, sec, cfg, peer_addr);
  if (!j) return 0;
  j->reverse_ok = reverse_ok;
  j->ping = ping;
  uint64_t id = j->tunnel;
  post(j);  // j belongs to the engine thread now
  return id;
}

void hbone_accept(uint64_t tunnel, uint32_t id, int fd, uint8_t *initial, size_t len) {
  job *j = job_new(J_ACCEPT, 0);
  if (!j) {
    close(fd);
    free(initial);
    return;
  }
  j->tunnel = tunnel;
  j->id = id;
  j->fd = fd;
  j->initial = initial;
  j->len = initial ? len : 0;
  post(j);
}

void hbone_refuse(uint64_t tunnel, uint32_t id, int status) {
  job *j = job_new(J_REFUSE, 0);
  if (!j) return;
  j->tunnel = tunnel;
  j->id = id;
  j->status = status;
  post(j);
}

static char *put(char **p, const char *v) {
  char *at = *p;
  size_t n = v ? strlen(v) : 0;
  if (n) memcpy(at, v, n);
  at[n] = 0;
  *p += n + 1;
  return at;
}

void hbone_open(const hb_open_args *a, const hb_security *sec, void *cfg) {
  const char *strs[10] = {a->key,        a->expect,       a->authority,   a->baggage,
                          a->forwarded,  a->traceparent,  a->expect_node, a->via_key,
                          a->via_expect, a->via_authority};
  size_t text = 0;
  for (int i = 0; i < 10; i++) text += (strs[i] ? strlen(strs[i]) : 0) + 1;
  job *j = job_new(J_OPEN, text);
  if (!j) {
    close(a->fd);
    return;
  }
  j->open = *a;
  char *p = j->text;
  j->open.key = put(&p, a->key);
  j->open.expect = put(&p, a->expect);
  j->open.authority = put(&p, a->authority);
  j->open.baggage = put(&p, a->baggage);
  j->open.forwarded = put(&p, a->forwarded);
  j->open.traceparent = put(&p, a->traceparent);
  // NULL stays NULL: these mean "not set".
  const char **opt[4] = {&j->open.expect_node, &j->open.via_key, &j->open.via_expect,
                         &j->open.via_authority};
  for (int i = 0; i < 4; i++) *opt[i] = *opt[i] ? put(&p, *opt[i]) : NULL;
  j->sec = sec;
  j->cfg = cfg;
  sec->cfg_ref(cfg);
  post(j);
}

void hbone_close_all(void) {
  job *j = job_new(J_CLOSE_ALL, 0);
  if (j) post(j);
}

uint64_t hbone_reverse(int fd, const hb_security *sec, void *cfg, const char *peer_addr,
                       const char *expect, hb_ping ping) {
  size_t le = expect ? strlen(expect) + 1 : 1;
  job *j = tunnel_job(J_REVERSE, le, fd, sec, cfg, peer_addr);
  if (!j) return 0;
  memcpy(j->text, expect ? expect : "", le);
  j->ping = ping;
  uint64_t id = j->tunnel;
  post(j);
  return id;
}

void hbone_reverse_accept(uint64_t tunnel) {
  job *j = job_new(J_REVERSE_ACCEPT, 0);
  if (!j) return;
  j->tunnel = tunnel;
  post(j);
}

void hbone_close(uint64_t tunnel, uint32_t code, bool drain, const char *reason) {
  job *j = job_new(J_CLOSE, 0);
  if (!j) return;
  j->tunnel = tunnel;
  j->code = code;
  j->drain = drain;
  j->reason = reason;
  post(j);
}

int hbone_stats(hb_conn_stats *out, int max) {
  pthread_mutex_lock(&hb.lock);
  int n = hb.nstats;
  memcpy(out, stats, sizeof *out * (size_t)(n < max ? n : max));
  pthread_mutex_unlock(&hb.lock);
  return n;
}
