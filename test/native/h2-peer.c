// Runs native/h2.c over a real TCP socket against another HTTP/2
// implementation (Node's http2, which is nghttp2), cleartext with prior
// knowledge. Test-only; driven by test/unit/h2.test.ts.
//   h2-peer client PORT   the CONNECT scenarios against a server on 127.0.0.1:PORT
//   h2-peer server        serve one connection on 127.0.0.1 (prints "port N" first):
//                         "echo:*" echoes, "reset:*" resets after the first data,
//                         "refuse:*" answers 503, "hold:*" takes data and never
//                         ends (until the client resets it)
// Prints "ok what" / "fail what" lines and facts ("sha256 ...", "rtt_us N");
// exits 1 when a check failed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../native/h2.h"
#include "mbedtls/sha256.h"

// ---- SHA-256 (mbedTLS's, as in ugate), to compare payloads with Node's crypto -------------
struct sha {
  mbedtls_sha256_context c;
};

static void sha_init(struct sha *s) {
  mbedtls_sha256_init(&s->c);
  mbedtls_sha256_starts(&s->c, 0);
}

static void sha_update(struct sha *s, const uint8_t *p, size_t n) {
  mbedtls_sha256_update(&s->c, p, n);
}

// Finishes s (and frees it): once per stream.
static void sha_hex(struct sha *s, char out[65]) {
  uint8_t d[32];
  mbedtls_sha256_finish(&s->c, d);
  mbedtls_sha256_free(&s->c);
  for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

// ---- streams ------------------------------------------------------------------------------
#define SLOTS 4096
struct st {
  bool used, ended, closed, got_end, reset_sent;
  int status;
  uint32_t close_code;
  bool close_remote;
  uint64_t to_send, sent, received;
  uint64_t rng;
  struct sha sent_sha, recv_sha;
  uint8_t *pend;  // bytes waiting for window (echo, or generated)
  size_t pend_len, pend_cap;
  char kind[32];
};
static struct st streams[SLOTS];
static h2_conn *conn;
static int fails;
static bool server_mode;

static struct st *S(uint32_t id) {
  return &streams[(id >> 1) % SLOTS];
}

static void say(bool ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", ok ? "ok" : "fail");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  if (!ok) fails++;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

static void append(struct st *s, const uint8_t *p, size_t n) {
  if (s->pend_len + n > s->pend_cap) {
    s->pend_cap = (s->pend_len + n) * 2;
    s->pend = realloc(s->pend, s->pend_cap);
  }
  memcpy(s->pend + s->pend_len, p, n);
  s->pend_len += n;
}

// Generated payload: the next bytes of the stream's xorshift sequence.
static void generate(struct st *s, size_t n) {
  uint8_t buf[16384];
  for (size_t i = 0; i < n; i++) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    buf[i] = (uint8_t)s->rng;
  }
  append(s, buf, n);
}

// Push what the windows allow; with everything out and the send side done, END_STREAM.
static void flush(uint32_t id) {
  struct st *s = S(id);
  if (!s->used || s->closed || s->ended) return;
  for (;;) {
    if (s->pend_len == 0 && s->sent < s->to_send) {
      uint64_t left = s->to_send - s->sent;
      generate(s, left < 16384 ? left : 16384);
    }
    // The stream the client resets never ends its upload: with big windows the
    // whole echo could otherwise be over before the reset, which then finds
    // the stream closed at Node.
    bool done_after =
        server_mode ? s->got_end
                    : s->sent + s->pend_len >= s->to_send && strcmp(s->kind, "client-reset") != 0;
    if (s->pend_len == 0 && !done_after) return;
    ssize_t k = h2_send(conn, id, s->pend, s->pend_len, done_after);
    if (k < 0) return;
    if (!server_mode)
      sha_update(&s->sent_sha, s->pend, k);
    else
      h2_consumed(conn, id, k);  // echoed: the window goes back to the client
    s->sent += k;
    if (k > 0) memmove(s->pend, s->pend + k, s->pend_len - k);
    s->pend_len -= k;
    if (done_after && s->pend_len == 0) {
      s->ended = true;
      if (!h2_user(conn, id) && s->got_end) s->closed = true;  // both ends done
      return;
    }
    if (k == 0 || (s->pend_len > 0)) return;  // window full
  }
}

static void flush_all(void) {
  for (int i = 0; i < SLOTS; i++)
    if (streams[i].used && !streams[i].closed) flush(i * 2 + 1);  // client-opened ids are odd
}

// ---- events ---------------------------------------------------------------------------
static char first_headers[1024];

static void on_request(void *ctx, uint32_t id, const char *a, size_t al, const struct h2_header *h,
                       int n) {
  (void)ctx;
  struct st *s = S(id);
  memset(s, 0, sizeof *s);
  s->used = true;
  snprintf(s->kind, sizeof s->kind, "%.*s", (int)al, a);
  h2_set_user(conn, id, s);
  if (!first_headers[0]) {
    size_t used = snprintf(first_headers, sizeof first_headers, "authority=%s", s->kind);
    for (int i = 0; i < n; i++)
      used += snprintf(first_headers + used, sizeof first_headers - used, " %.*s=%.*s",
                       (int)h[i].name_len, h[i].name, (int)h[i].value_len, h[i].value);
    printf("request %s\n", first_headers);
  }
  for (int i = 0; i < n; i++)  // a header block that needed CONTINUATION frames
    if (h[i].value_len > 16384)
      printf("long_header %.*s %zu\n", (int)h[i].name_len, h[i].name, h[i].value_len);
  if (!strncmp(s->kind, "refuse:", 7)) {
    h2_respond(conn, id, 503, NULL, 0);
    s->closed = true;
    return;
  }
  h2_respond(conn, id, 200, NULL, 0);
}

static void on_response(void *ctx, uint32_t id, int status, const struct h2_header *h, int n) {
  (void)ctx, (void)h, (void)n;
  S(id)->status = status;
  flush(id);
}

static void on_data(void *ctx, uint32_t id, const uint8_t *p, size_t n) {
  (void)ctx;
  struct st *s = S(id);
  s->received += n;
  if (server_mode) {
    if (!strncmp(s->kind, "reset:", 6)) {
      h2_consumed(conn, id, n);
      h2_reset(conn, id, H2_CANCEL);
      s->closed = true;
      return;
    }
    if (!strncmp(s->kind, "hold:", 5)) {
      h2_consumed(conn, id, n);
      return;
    }
    append(s, p, n);  // consumed once echoed
    flush(id);
    return;
  }
  sha_update(&s->recv_sha, p, n);
  h2_consumed(conn, id, n);
  if (!strcmp(s->kind, "client-reset") && !s->reset_sent) {
    s->reset_sent = true;
    h2_reset(conn, id, H2_CANCEL);
    s->closed = true;
  }
}

static void on_end(void *ctx, uint32_t id) {
  (void)ctx;
  struct st *s = S(id);
  s->got_end = true;
  if (server_mode && strncmp(S(id)->kind, "hold:", 5))
    flush(id);  // echo's END_STREAM once the echo is out
}

static void on_closed(void *ctx, uint32_t id, uint32_t code, bool remote) {
  (void)ctx;
  struct st *s = S(id);
  s->closed = true;
  s->close_code = code;
  s->close_remote = remote;
  if (server_mode && code != 0) printf("reset_by_client %u %u\n", id, code);
}

static void on_writable(void *ctx, uint32_t id) {
  (void)ctx;
  if (id == 0)
    flush_all();
  else
    flush(id);
}

static bool goaway_seen;
static void on_goaway(void *ctx, uint32_t last, uint32_t code) {
  (void)ctx;
  goaway_seen = true;
  printf("goaway last=%u code=%u\n", last, code);
}

static uint64_t rtt;
static void on_pong(void *ctx, uint64_t payload) {
  (void)ctx;
  rtt = now_us() - payload;
  printf("rtt_us %llu\n", (unsigned long long)rtt);
}

static const struct h2_events events = {on_request, on_response, on_data,   on_end,
                                        on_closed,  on_writable, on_goaway, on_pong};

// ---- the socket loop --------------------------------------------------------------------------
static int fd = -1;
static bool eof;

// One round: send what is queued, read what came. False when the connection is over.
static bool pump(int timeout_ms) {
  size_t len;
  const uint8_t *out = h2_output(conn, &len);
  struct pollfd p = {.fd = fd, .events = POLLIN | (len ? POLLOUT : 0)};
  if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR) return false;
  if (p.revents & POLLOUT) {
    ssize_t n = send(fd, out, len, MSG_NOSIGNAL);
    if (n > 0)
      h2_output_done(conn, n);
    else if (n < 0 && errno != EAGAIN)
      return false;
  }
  if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
    static uint8_t buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      eof = true;
      return false;
    }
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    int err = h2_recv(conn, buf, n);
    if (err) {
      printf("connection error %d\n", err);
      return false;
    }
  }
  return true;
}

// Pump until every stream in [first, last] (ids) is closed; false on a dead connection.
static bool wait_closed(uint32_t first, uint32_t last) {
  uint64_t deadline = now_us() + 60 * 1000000ull;
  for (;;) {
    bool all = true;
    for (uint32_t id = first; id <= last; id += 2) all &= S(id)->closed;
    if (all) return true;
    if (now_us() > deadline) return false;
    if (!pump(1000)) return false;
  }
}

static int64_t open_stream(const char *authority, const char *kind, uint64_t size, uint64_t seed) {
  static const struct h2_header hs[] = {
      {"baggage", "k8s.cluster.name=c1,k8s.namespace.name=ns,service.name=ugate", 7, 60},
      {"forwarded", "for=\"127.0.0.1\"", 9, 15},
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 11, 55},
  };
  int64_t id = h2_open(conn, authority, hs, 3);
  if (id <= 0) return id;
  struct st *s = S(id);
  memset(s, 0, sizeof *s);
  s->used = true;
  s->to_send = size;
  s->rng = seed * 0x9e3779b97f4a7c15ull + 1;  // never 0, distinct per seed
  snprintf(s->kind, sizeof s->kind, "%s", kind);
  h2_set_user(conn, id, s);  // h2_user is NULL once the stream is gone
  sha_init(&s->sent_sha);
  sha_init(&s->recv_sha);
  return id;
}

static int run_client(int port) {
  fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return perror("connect"), 2;
  conn = h2_new(false, NULL, &events, NULL);
  h2_ping(conn, now_us());

  // 16 MiB each way through one stream, echoed.
  int64_t big = open_stream("echo:big", "echo", 16 << 20, 42);
  bool ok = big > 0 && wait_closed(big, big);
  struct st *s = S(big);
  char hs[65], hr[65];
  sha_hex(&s->sent_sha, hs);
  sha_hex(&s->recv_sha, hr);
  printf("sha256 sent %s\nsha256 received %s\n", hs, hr);
  say(ok && s->status == 200 && s->received == 16 << 20 && !strcmp(hs, hr) && s->close_code == 0,
      "16 MiB echoed on one stream, half-closed both ways (%llu bytes back)",
      (unsigned long long)s->received);
  say(rtt > 0, "PING acknowledged (rtt %llu us)", (unsigned long long)rtt);

  // 100 concurrent streams of 64 KiB.
  int64_t first = 0, last = 0;
  for (int i = 0; i < 100; i++) {
    int64_t id = open_stream("echo:many", "echo", 64 << 10, 1000 + i);
    if (id <= 0) break;
    if (!first) first = id;
    last = id;
  }
  say(last - first == 198 && h2_stream_count(conn) == 100, "100 streams open at once");
  for (int64_t id = first; id <= last; id += 2) flush(id);
  ok = wait_closed(first, last);
  int good = 0;
  for (int64_t id = first; id <= last; id += 2) {
    s = S(id);
    sha_hex(&s->sent_sha, hs);
    sha_hex(&s->recv_sha, hr);
    good += s->received == 64 << 10 && !strcmp(hs, hr) && s->close_code == 0;
  }
  say(ok && good == 100, "100 concurrent streams echoed exactly (%d)", good);

  // The server resets a stream.
  int64_t r = open_stream("reset:1", "reset", 100, 7);
  ok = r > 0 && wait_closed(r, r);
  s = S(r);
  say(ok && s->close_code == H2_CANCEL && s->close_remote,
      "server RST_STREAM CANCEL seen (code %u)", s->close_code);

  // We reset a stream once its echo starts, in the middle of our upload.
  r = open_stream("echo:client-reset", "client-reset", 1 << 20, 8);
  ok = r > 0 && wait_closed(r, r);
  say(ok && S(r)->reset_sent, "client RST_STREAM sent");

  // A header block larger than a frame: HEADERS + CONTINUATION.
  static char big_value[20000];
  memset(big_value, 'b', sizeof big_value);
  struct h2_header big_header = {"x-big", big_value, 5, sizeof big_value};
  r = h2_open(conn, "echo:long-header", &big_header, 1);
  if (r > 0) {
    s = S(r);
    memset(s, 0, sizeof *s);
    s->used = true;
    s->to_send = 10;
    s->rng = 77;
    h2_set_user(conn, r, s);
  }
  ok = r > 0 && wait_closed(r, r);
  say(ok && S(r)->status == 200 && S(r)->received == 10,
      "20000-byte header sent in CONTINUATION frames");

  // A refused tunnel.
  r = open_stream("refuse:1", "refuse", 0, 9);
  ok = r > 0 && wait_closed(r, r);
  say(ok && S(r)->status == 503 && S(r)->got_end, "503 refusal with END_STREAM");

  h2_goaway(conn, H2_NO_ERROR);
  while (pump(100)) {
    size_t len;
    h2_output(conn, &len);
    if (len == 0) break;
  }
  shutdown(fd, SHUT_WR);
  for (uint64_t end = now_us() + 5000000; now_us() < end && pump(1000);) {
  }
  say(true, "GOAWAY sent");
  h2_free(conn);
  close(fd);
  return fails ? 1 : 0;
}

static int run_server(void) {
  server_mode = true;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0)
    return perror("listen"), 2;
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);
  fd = accept(ls, NULL, NULL);
  close(ls);
  if (fd < 0) return perror("accept"), 2;
  conn = h2_new(true, NULL, &events, NULL);
  while (pump(10000)) {
  }
  uint64_t bytes = 0;
  int n = 0;
  for (int i = 0; i < SLOTS; i++)
    if (streams[i].used) n++, bytes += streams[i].received, free(streams[i].pend);
  printf("served streams=%d bytes=%llu goaway=%d eof=%d\n", n, (unsigned long long)bytes,
         goaway_seen, eof);
  h2_free(conn);
  close(fd);
  return eof ? 0 : 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && !strcmp(argv[1], "client")) return run_client(atoi(argv[2]));
  if (argc == 2 && !strcmp(argv[1], "server")) return run_server();
  fprintf(stderr, "usage: h2-peer client PORT | h2-peer server\n");
  return 2;
}
