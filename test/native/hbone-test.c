// Tests of native/hbone.c on the engine thread over real loopback sockets,
// with a plain-TCP transport (this file's only: ugate offers no unencrypted
// HBONE). A client tunnel and a server tunnel of the same process talk
// through 127.0.0.1; destinations are small TCP servers on threads.
// Built with ASan/UBSan and run by test/unit/hbone.test.ts; prints one
// "ok N - what" or "not ok N - what: why" line per check.
#define _GNU_SOURCE
#include "../../native/hbone.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;

static void check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s %d - ", ok ? "ok" : "not ok", ++checks);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  if (!ok) failures++;
}

// ---- the plain transport --------------------------------------------------------------
// Reverse tunnels: a one-byte stand-in for ALPN. The dialing side sends 'R'
// and reads the answer; the listener's side answers 'R' (agreed) or 'H' (h2
// only: what a listener without the opt-in does).
// Writes are batched as tls.c's tls_batch does (kept until p_flush or full,
// with a small buffer so that it fills often): every test also checks that
// hbone.c flushes what it wrote and resumes a flush on EPOLLOUT.
#define PLAIN_BATCH 20000
typedef struct {
  int fd;
  bool reverse, server, agreed;
  int step;  // reverse handshake: 0 = first byte to move, 1 = second, 2 = done
  uint8_t out[PLAIN_BATCH];
  size_t out_off, out_len;
} plain;
static int cfg_refs;        // the config's references: back to 0 at the end
static bool rev_answer_h2;  // the listener's side answers 'H'

static void *p_new(void *cfg, int fd, bool server, const char *expect) {
  (void)cfg, (void)expect;
  plain *p = calloc(1, sizeof *p);
  if (p) p->fd = fd, p->server = server, p->step = 2;
  return p;
}
static void *p_new_reverse(void *cfg, int fd, bool server, const char *expect) {
  plain *p = p_new(cfg, fd, server, expect);
  if (p) p->reverse = true, p->step = 0;
  return p;
}
static void p_free(void *t) {
  free(t);
}
static int p_move(plain *p, bool out, char *c) {
  ssize_t n =
      out ? send(p->fd, c, 1, MSG_DONTWAIT | MSG_NOSIGNAL) : recv(p->fd, c, 1, MSG_DONTWAIT);
  if (n == 1) return 0;
  if (n == 0) return HB_FAILED;
  return errno == EAGAIN ? (out ? HB_WANT_WRITE : HB_WANT_READ) : HB_FAILED;
}
static int p_handshake(void *t) {
  plain *p = t;
  while (p->step < 2) {
    char c = 'R';
    bool out = p->server == (p->step == 1);  // server: read, then write; client: write, then read
    if (out && p->server) c = p->agreed ? 'R' : 'H';
    int r = p_move(p, out, &c);
    if (r) return r;
    if (!out) p->agreed = c == 'R' && !(p->server && rev_answer_h2);
    p->step++;
  }
  return 0;
}
static const char *p_alpn(const void *t) {
  return ((const plain *)t)->agreed ? HB_ALPN_REVERSE : "h2";
}
static ssize_t p_read(void *t, uint8_t *buf, size_t cap) {
  ssize_t n = recv(((plain *)t)->fd, buf, cap, MSG_DONTWAIT);
  if (n > 0) return n;
  if (n == 0) return HB_EOF;
  return errno == EAGAIN || errno == EINTR ? HB_WANT_READ : HB_FAILED;
}
static int p_flush(void *t) {
  plain *p = t;
  while (p->out_off < p->out_len) {
    ssize_t w =
        send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EINTR ? HB_WANT_WRITE : HB_FAILED;
    p->out_off += (size_t)w;
  }
  p->out_off = p->out_len = 0;
  return 0;
}
static ssize_t p_write(void *t, const uint8_t *b, size_t n) {
  plain *p = t;
  if (p->out_len == PLAIN_BATCH) {
    int r = p_flush(p);
    if (r) return r;
  }
  if (p->out_off) {
    memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
    p->out_len -= p->out_off;
    p->out_off = 0;
  }
  size_t k = PLAIN_BATCH - p->out_len < n ? PLAIN_BATCH - p->out_len : n;
  memcpy(p->out + p->out_len, b, k);
  p->out_len += k;
  return (ssize_t)k;
}
static size_t p_pending(const void *t) {
  (void)t;
  return 0;
}
static const char *p_error(const void *t) {
  (void)t;
  return "";
}
static const char *p_peer_id(const void *t) {
  (void)t;
  return "spiffe://test.local/ns/a/sa/b";
}
static const char *p_peer_node(const void *t) {
  (void)t;
  return "NODEID";
}
static void p_ref(void *cfg) {
  (void)cfg;
  __atomic_add_fetch(&cfg_refs, 1, __ATOMIC_SEQ_CST);
}
static void p_unref(void *cfg) {
  (void)cfg;
  __atomic_sub_fetch(&cfg_refs, 1, __ATOMIC_SEQ_CST);
}
static const hb_security plain_sec = {p_new,     p_free,        p_handshake, p_read,      p_write,
                                      p_pending, p_error,       p_peer_id,   p_peer_node, p_ref,
                                      p_unref,   p_new_reverse, p_alpn,      p_flush};

// ---- sockets ------------------------------------------------------------------------------
static int listen_any(struct sockaddr_in *out) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 512) ||
      getsockname(fd, (struct sockaddr *)&a, &l)) {
    perror("listen");
    exit(2);
  }
  *out = a;
  return fd;
}

static int dial(const struct sockaddr_in *a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof *a)) {
    perror("connect");
    exit(2);
  }
  return fd;
}

// A connected TCP pair on loopback: *a is the test's end, *b goes to hbone.
static int pair_lfd = -1;
static struct sockaddr_in pair_addr;
static void tcp_pair(int *a, int *b) {
  *a = dial(&pair_addr);
  *b = accept4(pair_lfd, NULL, NULL, SOCK_CLOEXEC);
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static uint64_t next_rand(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

// ---- destinations --------------------------------------------------------------------------
// echo: everything back, then FIN after the client's FIN.
// half: sends "early" and FIN at once, then counts what it reads until EOF.
// reset: reads one byte, then closes with an RST.
// bulk: sends BULK_N bytes as fast as it can and FIN, then reads until EOF.
enum { D_ECHO, D_HALF, D_RESET, D_SILENT, D_BULK, D_N };
#define BULK_N (32 << 20)
static struct sockaddr_in dest_addr[D_N];
static int dest_lfd[D_N];
static uint64_t half_read;  // what `half` read before EOF (under lock)
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;  // also of the reports below
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int dest_live;  // destination connections not yet closed (under lock)

typedef struct {
  int fd, kind;
} conn_arg;

static void *dest_conn(void *arg) {
  conn_arg *c = arg;
  static __thread uint8_t buf[65536];
  if (c->kind == D_ECHO) {
    for (ssize_t n; (n = read(c->fd, buf, sizeof buf)) > 0;)
      for (ssize_t off = 0, w; off < n; off += w)
        if ((w = write(c->fd, buf + off, n - off)) <= 0) goto out;
    shutdown(c->fd, SHUT_WR);
    while (read(c->fd, buf, sizeof buf) > 0) {
    }
  } else if (c->kind == D_HALF) {
    if (write(c->fd, "early", 5) != 5) goto out;
    shutdown(c->fd, SHUT_WR);
    uint64_t total = 0;
    for (ssize_t n; (n = read(c->fd, buf, sizeof buf)) > 0;) total += n;
    pthread_mutex_lock(&lock);
    half_read = total;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
  } else if (c->kind == D_RESET) {
    if (read(c->fd, buf, 1) != 1) goto out;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  } else if (c->kind == D_BULK) {
    memset(buf, 'b', sizeof buf);
    for (size_t off = 0; off < BULK_N;) {
      ssize_t w = write(c->fd, buf, BULK_N - off < sizeof buf ? BULK_N - off : sizeof buf);
      if (w <= 0) goto out;
      off += w;
    }
    shutdown(c->fd, SHUT_WR);
    while (read(c->fd, buf, sizeof buf) > 0) {
    }
  } else {  // silent: a peer that never answers (reads and drops)
    while (read(c->fd, buf, sizeof buf) > 0) {
    }
  }
out:
  close(c->fd);
  free(c);
  pthread_mutex_lock(&lock);
  dest_live--;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void *dest_accept(void *arg) {
  int kind = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept4(dest_lfd[kind], NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return NULL;
    conn_arg *c = malloc(sizeof *c);
    pthread_mutex_lock(&lock);
    dest_live++;
    pthread_mutex_unlock(&lock);
    c->fd = fd;
    c->kind = kind;
    pthread_t t;
    pthread_create(&t, NULL, dest_conn, c);
    pthread_detach(t);
  }
}

// ---- reports ------------------------------------------------------------------------------
#define MAXR 4096
static hb_report *got[MAXR];
static int ngot;
static char last_request[512];

// Engine thread: keep every report; answer requests by their authority.
static void sink(hb_report *batch) {
  if (getenv("HB_DEBUG"))
    for (hb_report *r = batch; r; r = r->next)
      fprintf(stderr, "report kind=%d tunnel=%llu stream=%u tag=%llu status=%d reason=%s\n",
              r->kind, (unsigned long long)r->tunnel, r->stream, (unsigned long long)r->tag,
              r->status, r->reason);
  for (hb_report *r = batch, *next; r; r = next) {
    next = r->next;
    if (r->kind == HB_REQUEST) {
      pthread_mutex_lock(&lock);
      snprintf(last_request, sizeof last_request,
               "authority=%s baggage=%s forwarded=%s traceparent=%s peer=%s node=%s", r->authority,
               r->baggage, r->forwarded, r->traceparent, r->peer_id, r->peer_node);
      pthread_mutex_unlock(&lock);
      int kind = !strncmp(r->authority, "echo:", 5)    ? D_ECHO
                 : !strncmp(r->authority, "half:", 5)  ? D_HALF
                 : !strncmp(r->authority, "reset:", 6) ? D_RESET
                 : !strncmp(r->authority, "bulk:", 5)  ? D_BULK
                                                       : -1;
      if (kind < 0)
        hbone_refuse(r->tunnel, r->stream, 503);
      else if (!strncmp(r->authority, "echo:hello", 10))  // initial bytes go in first
        hbone_accept(r->tunnel, r->stream, dial(&dest_addr[kind]), (uint8_t *)strdup("hi:"), 3);
      else
        hbone_accept(r->tunnel, r->stream, dial(&dest_addr[kind]), NULL, 0);
    }
    pthread_mutex_lock(&lock);
    if (ngot < MAXR)
      got[ngot++] = r;
    else
      free(r);
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
  }
}

// The first report of kind for tag (client) or with reason prefix; waits for it.
static hb_report *wait_report(int kind, uint64_t tag, int server) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 30;  // a hang is a failure, not a timed assertion
  pthread_mutex_lock(&lock);
  for (;;) {
    for (int i = 0; i < ngot; i++) {
      hb_report *r = got[i];
      if (r && r->kind == kind && (server ? r->tag == 0 && r->stream == tag : r->tag == tag)) {
        got[i] = NULL;
        pthread_mutex_unlock(&lock);
        return r;
      }
    }
    if (pthread_cond_timedwait(&changed, &lock, &dl) == ETIMEDOUT) {
      pthread_mutex_unlock(&lock);
      return NULL;
    }
  }
}

// The first report of kind for tunnel; waits for it.
static hb_report *wait_tunnel(int kind, uint64_t tunnel) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 30;
  pthread_mutex_lock(&lock);
  for (;;) {
    for (int i = 0; i < ngot; i++)
      if (got[i] && got[i]->kind == kind && got[i]->tunnel == tunnel) {
        hb_report *r = got[i];
        got[i] = NULL;
        pthread_mutex_unlock(&lock);
        return r;
      }
    if (pthread_cond_timedwait(&changed, &lock, &dl) == ETIMEDOUT) {
      pthread_mutex_unlock(&lock);
      return NULL;
    }
  }
}

static hb_report *wait_closed(uint64_t tunnel) {
  return wait_tunnel(HB_CLOSED, tunnel);
}

static void drop_reports(void) {
  pthread_mutex_lock(&lock);
  for (int i = 0; i < ngot; i++) free(got[i]);
  ngot = 0;
  pthread_mutex_unlock(&lock);
}

// ---- the client's end ------------------------------------------------------------------
static struct sockaddr_in server_addr;
static uint64_t next_tag = 1;

static uint64_t open_stream(const char *key, const struct sockaddr_in *peer, const char *authority,
                            int *local) {
  int a, b;
  tcp_pair(&a, &b);
  hb_open_args o = {.key = key,
                    .peer_len = sizeof *peer,
                    .authority = authority,
                    .baggage = "k8s.namespace.name=ns,service.name=t",
                    .forwarded = "for=\"127.0.0.9\"",
                    .traceparent = "00-aa-bb-01",
                    .fd = b,
                    .tag = next_tag++};
  memcpy(&o.peer, peer, sizeof *peer);
  hbone_open(&o, &plain_sec, NULL);
  *local = a;
  return o.tag;
}

typedef struct {
  int fd;
  size_t n;
  uint64_t seed;
} pump_arg;

static void *writer(void *arg) {
  pump_arg *p = arg;
  uint64_t x = p->seed;
  uint8_t buf[32768];
  for (size_t off = 0; off < p->n;) {
    size_t k = p->n - off < sizeof buf ? p->n - off : sizeof buf;
    for (size_t i = 0; i < k; i++) buf[i] = (uint8_t)next_rand(&x);
    for (size_t d = 0; d < k;) {
      ssize_t w = write(p->fd, buf + d, k - d);
      if (w <= 0) return (void *)1;
      d += w;
    }
    off += k;
  }
  shutdown(p->fd, SHUT_WR);
  return NULL;
}

// Reads to EOF; returns how many bytes matched the writer's sequence before the first difference.
static size_t read_compare(int fd, uint64_t seed, size_t *total) {
  uint64_t x = seed;
  uint8_t buf[32768];
  size_t good = 0, all = 0;
  bool same = true;
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
    for (ssize_t i = 0; i < n; i++, all++) {
      if (same && buf[i] == (uint8_t)next_rand(&x))
        good++;
      else
        same = false;
    }
  *total = all;
  return good;
}

// One echo stream: n bytes each way, compared.
typedef struct {
  uint64_t tag;
  int fd;
  size_t n, good, total;
  uint64_t seed;
} echo_run;

static void *echo_thread(void *arg) {
  echo_run *e = arg;
  pump_arg w = {e->fd, e->n, e->seed};
  pthread_t t;
  pthread_create(&t, NULL, writer, &w);
  e->good = read_compare(e->fd, e->seed, &e->total);
  pthread_join(t, NULL);
  return NULL;
}

// ---- scenarios -------------------------------------------------------------------------------
static void test_echo_big(void) {
  int a;
  echo_run e = {.n = (getenv("HB_N") ? atoi(getenv("HB_N")) : 8 << 20), .seed = 42};
  e.tag = open_stream("pool", &server_addr, "echo:big", &a);
  e.fd = a;
  hb_report *o = wait_report(HB_OPENED, e.tag, 0);
  check(o && o->status == 200, "echo: CONNECT answered 200");
  echo_thread(&e);
  check(e.total == e.n && e.good == e.n,
        "echo: 8 MiB each way, exact (%zu of %zu bytes back, %zu matching)", e.total, e.n, e.good);
  hb_report *d = wait_report(HB_DONE, e.tag, 0);
  check(d && !strcmp(d->reason, "eof") && d->up == e.n && d->down == e.n,
        "echo: client stream ended by EOF both ways (reason %s, up %llu, down %llu)",
        d ? d->reason : "?", d ? (unsigned long long)d->up : 0,
        d ? (unsigned long long)d->down : 0);
  hb_report *sd = o ? wait_report(HB_DONE, 1, 1) : NULL;  // the server's first stream is id 1
  check(sd && !strcmp(sd->reason, "eof") && sd->up == e.n && sd->down == e.n,
        "echo: server stream ended by EOF, same counts");
  pthread_mutex_lock(&lock);
  check(strstr(last_request,
               "authority=echo:big baggage=k8s.namespace.name=ns,service.name=t "
               "forwarded=for=\"127.0.0.9\" traceparent=00-aa-bb-01 "
               "peer=spiffe://test.local/ns/a/sa/b node=NODEID") != NULL,
        "request fields reach the server's owner (%s)", last_request);
  pthread_mutex_unlock(&lock);
  close(a);
  free(o), free(d), free(sd);
}

static void test_initial(void) {
  int a;
  uint64_t tag = open_stream("pool", &server_addr, "echo:hello", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 200, "initial bytes: 200");
  if (write(a, "there", 5) != 5) check(0, "write");
  shutdown(a, SHUT_WR);
  char buf[64] = "";
  size_t got_n = 0;
  for (ssize_t n; (n = read(a, buf + got_n, sizeof buf - 1 - got_n)) > 0;) got_n += n;
  check(got_n == 8 && !memcmp(buf, "hi:there", 8),
        "the server's initial bytes go into the tunnel first (%.*s)", (int)got_n, buf);
  close(a);
  free(o);
  free(wait_report(HB_DONE, tag, 0));
}

static void test_half_close(void) {
  int a;
  half_read = 0;
  uint64_t tag = open_stream("pool", &server_addr, "half:1", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 200, "half-close: 200");
  char buf[16];
  size_t n = 0;
  for (ssize_t k; (k = read(a, buf + n, sizeof buf - n)) > 0;) n += k;
  check(n == 5 && !memcmp(buf, "early", 5),
        "half-close: the destination's FIN reached the client (read to EOF)");
  pump_arg w = {a, 100 << 10, 7};
  check(writer(&w) == NULL, "half-close: the client still writes 100 KiB after the EOF it read");
  hb_report *d = wait_report(HB_DONE, tag, 0);
  check(d && !strcmp(d->reason, "eof"), "half-close: stream ended by EOF both ways (%s)",
        d ? d->reason : "?");
  pthread_mutex_lock(&lock);  // the destination tells its count once it read EOF
  while (half_read == 0) pthread_cond_wait(&changed, &lock);
  uint64_t seen = half_read;
  pthread_mutex_unlock(&lock);
  check(seen == 100 << 10, "half-close: the destination read 100 KiB, then EOF (%llu)",
        (unsigned long long)seen);
  close(a);
  free(o), free(d);
}

static void test_many(void) {
  enum { N = 100 };
  static echo_run e[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++) {
    char auth[32];
    snprintf(auth, sizeof auth, "echo:%d", i);
    e[i] = (echo_run){.n = 64 << 10, .seed = 1000 + i};
    e[i].tag = open_stream("pool", &server_addr, auth, &e[i].fd);
  }
  for (int i = 0; i < N; i++) pthread_create(&t[i], NULL, echo_thread, &e[i]);
  int ok = 0, opened = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ok += e[i].good == e[i].n && e[i].total == e[i].n;
    hb_report *o = wait_report(HB_OPENED, e[i].tag, 0);
    opened += o && o->status == 200;
    free(o);
    free(wait_report(HB_DONE, e[i].tag, 0));
    close(e[i].fd);
  }
  check(opened == N && ok == N, "100 concurrent streams: all 200, all echoed exactly (%d, %d)",
        opened, ok);
  hb_conn_stats st[8];
  int n = hbone_stats(st, 8), clients = 0;
  for (int i = 0; i < n && i < 8; i++) clients += !st[i].server;
  check(clients == 1, "one pooled client connection carried them (%d)", clients);
}

static void test_reset(void) {
  int a;
  uint64_t tag = open_stream("pool", &server_addr, "reset:1", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 200, "reset: 200");
  if (write(a, "x", 1) != 1) check(0, "write");
  char c;
  ssize_t n = read(a, &c, 1);
  int err = errno;
  check(n < 0 && err == ECONNRESET,
        "reset: the destination's RST is an RST for the client (%zd, %s)", n, strerror(err));
  hb_report *d = wait_report(HB_DONE, tag, 0);
  check(d && !strcmp(d->reason, "peer-reset"), "reset: client stream reason peer-reset (%s)",
        d ? d->reason : "?");
  close(a);
  free(o), free(d);
}

static void test_client_reset(void) {
  int a;
  uint64_t tag = open_stream("pool", &server_addr, "echo:rst", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 200, "client reset: 200");
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(a);  // an RST into the tunnel
  hb_report *d = wait_report(HB_DONE, tag, 0);
  check(d && !strcmp(d->reason, "socket-error") && d->err == ECONNRESET,
        "client reset: the client's RST ends the stream (%s, %s)", d ? d->reason : "?",
        d ? strerror(d->err) : "?");
  free(o), free(d);
}

static void test_refused(void) {
  int a;
  uint64_t tag = open_stream("pool", &server_addr, "nowhere:1", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 503, "refused: 503 reported (%d)", o ? o->status : -1);
  char c;
  check(read(a, &c, 1) <= 0, "refused: the client's socket is closed");
  hb_report *d = wait_report(HB_DONE, tag, 0);
  check(d && !strcmp(d->reason, "refused"), "refused: reason refused");
  close(a);
  free(o), free(d);
}

// A peer that takes bytes but never answers: the PING goes unanswered, the
// connection is closed, and the next stream for that key gets a new one.
static void test_dead_peer(void) {
  int a;
  uint64_t tag = open_stream("dead", &dest_addr[D_SILENT], "echo:x", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 0 && !strcmp(o->reason, "ping-timeout"),
        "dead peer: stream fails with ping-timeout (%s)", o ? o->reason : "?");
  hb_report *c1 = o ? wait_closed(o->tunnel) : NULL;
  check(c1 && !strcmp(c1->reason, "ping-timeout"), "dead peer: connection closed (ping-timeout)");
  close(a);
  int b;
  uint64_t tag2 = open_stream("dead", &dest_addr[D_SILENT], "echo:y", &b);
  hb_report *o2 = wait_report(HB_OPENED, tag2, 0);
  check(o2 && o && o2->tunnel != o->tunnel, "dead peer: the next stream went on a new connection");
  close(b);
  free(o), free(c1), free(o2);
  free(wait_report(HB_DONE, tag, 0));
  free(wait_report(HB_DONE, tag2, 0));
}

// Garbage instead of the client preface: connection error, GOAWAY, closed.
static void test_bad_preface(int lfd) {
  int raw = dial(&server_addr);
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  uint64_t tunnel = hbone_serve(fd, &plain_sec, NULL, "127.0.0.1:1", false, (hb_ping){0});
  const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  if (write(raw, junk, sizeof junk - 1) < 0) check(0, "write");
  uint8_t buf[4096];
  size_t n = 0;
  for (ssize_t k; (k = read(raw, buf + n, sizeof buf - n)) > 0;) n += k;
  bool goaway = false;
  for (size_t off = 0; off + 9 <= n;) {  // frames: SETTINGS, then GOAWAY(PROTOCOL_ERROR)
    size_t len = buf[off] << 16 | buf[off + 1] << 8 | buf[off + 2];
    if (buf[off + 3] == 7 && off + 9 + 8 <= n && buf[off + 9 + 7] == 1) goaway = true;
    off += 9 + len;
  }
  check(goaway, "bad preface: GOAWAY(PROTOCOL_ERROR) then close (%zu bytes)", n);
  hb_report *c = wait_closed(tunnel);
  check(c && !strcmp(c->reason, "protocol-error"),
        "bad preface: connection closed, protocol-error (%s)", c ? c->reason : "?");
  close(raw);
  free(c);
}

// A pooled connection whose tunnel socket on the server side drains slowly
// (small SO_SNDBUF): a fast destination fills the server's HTTP/2 output
// faster than it leaves, while the client PINGs every 20 ms. The output must
// stay bounded (a PING ACK is refused behind more than 1 MiB of it).
static int small_sndbuf;  // server_accept sets SO_SNDBUF to this when nonzero
static void test_backlog(void) {
  hbone_set_timing(20, 5000, 60000, 5000);
  __atomic_store_n(&small_sndbuf, 4096, __ATOMIC_SEQ_CST);
  int a;
  uint64_t tag = open_stream("slow", &server_addr, "bulk:1", &a);
  hb_report *o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 200, "backlog: 200");
  shutdown(a, SHUT_WR);
  uint8_t buf[65536];
  size_t total = 0;
  for (ssize_t n; (n = read(a, buf, sizeof buf)) > 0;) total += n;
  hb_report *d = wait_report(HB_DONE, tag, 0);
  check(total == BULK_N && d && !strcmp(d->reason, "eof"),
        "backlog: 32 MiB through a slow tunnel with PINGs every 20 ms (%zu bytes, %s)", total,
        d ? d->reason : "?");
  hb_conn_stats st[8];
  int n = hbone_stats(st, 8), open = 0;
  for (int i = 0; i < n && i < 8; i++) open += !st[i].server && !strcmp(st[i].key, "slow");
  check(open == 1, "backlog: the connection is still open (%d)", open);
  __atomic_store_n(&small_sndbuf, 0, __ATOMIC_SEQ_CST);
  hbone_set_timing(300, 600, 60000, 5000);
  close(a);
  free(o), free(d);
}

// ---- reverse tunnels -----------------------------------------------------------------------
// A public side (hbone_serve with reverse allowed) and a dialing side
// (hbone_reverse) over one loopback pair; both report HB_REVERSE when up.
static void reverse_pair(uint64_t *pub, uint64_t *nat, int ping_ms, int ping_timeout_ms) {
  int a, b;
  tcp_pair(&a, &b);
  *pub = hbone_serve(b, &plain_sec, NULL, "127.0.0.1:2", true, (hb_ping){0});
  *nat = hbone_reverse(a, &plain_sec, NULL, "127.0.0.1:3", NULL,
                       (hb_ping){.every_ms = ping_ms, .timeout_ms = ping_timeout_ms});
}

static uint64_t open_on_tunnel(uint64_t tunnel, const char *authority, int *local) {
  int a, b;
  tcp_pair(&a, &b);
  hb_open_args o = {.key = "rev",
                    .authority = authority,
                    .baggage = "",
                    .forwarded = "",
                    .traceparent = "",
                    .fd = b,
                    .tag = next_tag++,
                    .tunnel = tunnel};
  hbone_open(&o, &plain_sec, NULL);
  *local = a;
  return o.tag;
}

static const char *state_of(uint64_t tunnel) {
  static hb_conn_stats st[16];
  int n = hbone_stats(st, 16);
  for (int i = 0; i < n && i < 16; i++)
    if (st[i].id == tunnel) return st[i].reverse ? st[i].state : "not reverse";
  return "none";
}

// Whether a report of kind for tunnel is among those not taken yet.
static bool reported(int kind, uint64_t tunnel) {
  pthread_mutex_lock(&lock);
  bool found = false;
  for (int i = 0; i < ngot && !found; i++)
    found = got[i] && got[i]->kind == kind && got[i]->tunnel == tunnel;
  pthread_mutex_unlock(&lock);
  return found;
}

static void test_reverse(void) {
  uint64_t pub, nat;
  reverse_pair(&pub, &nat, 0, 0);
  hb_report *rp = wait_tunnel(HB_REVERSE, pub);
  check(rp && !strcmp(state_of(pub), "pending"),
        "reverse: the accepting side asks; nothing is sent until it is accepted (%s)",
        state_of(pub));
  hbone_reverse_accept(pub);
  hb_report *rn = wait_tunnel(HB_REVERSE, nat);
  check(rp && rn, "reverse: accepted, the dialing side hears it is up");
  check(rp && !strcmp(rp->peer_id, "spiffe://test.local/ns/a/sa/b") &&
            !strcmp(rp->peer_node, "NODEID"),
        "reverse: the public side learns the dialing gate's ids (%s %s)", rp ? rp->peer_id : "?",
        rp ? rp->peer_node : "?");
  // The public side (TLS server) opens the stream; the dialing side serves it.
  echo_run e = {.n = 1 << 20, .seed = 77};
  e.tag = open_on_tunnel(pub, "echo:rev", &e.fd);
  hb_report *o = wait_report(HB_OPENED, e.tag, 0);
  check(o && o->status == 200 && o->tunnel == pub,
        "reverse: CONNECT from the public side answered 200");
  echo_thread(&e);
  check(e.total == e.n && e.good == e.n, "reverse: 1 MiB each way, exact (%zu, %zu)", e.total,
        e.good);
  hb_report *d = wait_report(HB_DONE, e.tag, 0);
  check(d && !strcmp(d->reason, "eof"), "reverse: stream ended by EOF both ways (%s)",
        d ? d->reason : "?");
  // The dialing side's stream (by tunnel: an earlier test may leave a server stream 1's report).
  hb_report *sd = wait_tunnel(HB_DONE, nat);
  check(sd && sd->tunnel == nat && !strcmp(sd->reason, "eof"),
        "reverse: served on the dialing side");
  close(e.fd);
  // Only the public side's end of a reverse tunnel takes client streams.
  int x, y;
  uint64_t t1 = open_on_tunnel(nat, "echo:no", &x), t2 = open_on_tunnel(999999, "echo:no", &y);
  hb_report *o1 = wait_report(HB_OPENED, t1, 0), *o2 = wait_report(HB_OPENED, t2, 0);
  check(o1 && o2 && !strcmp(o1->reason, "tunnel-gone") && !strcmp(o2->reason, "tunnel-gone"),
        "reverse: a stream on the dialing side's end or an unknown tunnel: tunnel-gone");
  close(x), close(y);
  free(wait_report(HB_DONE, t1, 0)), free(wait_report(HB_DONE, t2, 0));
  // Replaced: both ends close.
  hbone_close(pub, 0, false, "replaced");
  hb_report *cp = wait_closed(pub), *cn = wait_closed(nat);
  check(cp && cn && !strcmp(cp->reason, "replaced"),
        "reverse: closed by the accepting side (%s, %s)", cp ? cp->reason : "?",
        cn ? cn->reason : "?");
  free(rp), free(rn), free(o), free(d), free(sd), free(o1), free(o2), free(cp), free(cn);

  // The public gate refuses it: GOAWAY(REFUSED_STREAM), both ends say so; never up.
  reverse_pair(&pub, &nat, 0, 0);
  free(wait_tunnel(HB_REVERSE, pub));
  hbone_close(pub, 0x7, false, "reverse-refused");
  cp = wait_closed(pub), cn = wait_closed(nat);
  check(cp && !strcmp(cp->reason, "reverse-refused"), "reverse refused: public side closed");
  check(cn && !strcmp(cn->reason, "reverse-refused"),
        "reverse refused: the dialing side hears it was refused (%s)", cn ? cn->reason : "?");
  check(!reported(HB_REVERSE, nat), "reverse refused: the dialing side never reported it up");
  free(cp), free(cn);

  // A listener that agrees on h2 only.
  rev_answer_h2 = true;
  reverse_pair(&pub, &nat, 0, 0);
  cn = wait_closed(nat);
  check(cn && !strcmp(cn->reason, "reverse-unsupported"),
        "reverse unsupported: the dialing side closes (%s)", cn ? cn->reason : "?");
  cp = wait_closed(pub);
  check(cp != NULL, "reverse unsupported: the listener's side is closed too (%s)",
        cp ? cp->reason : "?");
  rev_answer_h2 = false;
  free(cp), free(cn);

  // Stopping with a stream open: GOAWAY, the stream finishes, then the tunnel closes.
  reverse_pair(&pub, &nat, 0, 0);
  free(wait_tunnel(HB_REVERSE, pub));
  hbone_reverse_accept(pub);
  free(wait_tunnel(HB_REVERSE, nat));
  int a;
  uint64_t tag = open_on_tunnel(pub, "echo:drain", &a);
  o = wait_report(HB_OPENED, tag, 0);
  check(o && o->status == 200, "drain: stream open");
  hbone_close(nat, 0, true, "stopped");
  if (write(a, "after", 5) != 5) check(0, "write");
  shutdown(a, SHUT_WR);
  char buf[16];
  size_t n = 0;
  for (ssize_t k; (k = read(a, buf + n, sizeof buf - n)) > 0;) n += k;
  check(n == 5 && !memcmp(buf, "after", 5),
        "drain: the open stream still carries data after GOAWAY");
  cn = wait_closed(nat), cp = wait_closed(pub);
  check(cn && cp, "drain: both ends closed once the stream was over (%s, %s)",
        cn ? cn->reason : "?", cp ? cp->reason : "?");
  close(a);
  free(o), free(cn), free(cp), free(wait_report(HB_DONE, tag, 0));

  // The dialing side PINGs with its own timing: a public side that went
  // silent (reads and drops) is noticed.
  int s, f;
  tcp_pair(&s, &f);
  nat = hbone_reverse(f, &plain_sec, NULL, "127.0.0.1:4", NULL,
                      (hb_ping){.every_ms = 100, .timeout_ms = 300});
  char c;
  if (read(s, &c, 1) != 1 || write(s, "R", 1) != 1) check(0, "fake public side");
  // A public side that agreed, then went silent: the PINGs go unanswered.
  cn = wait_closed(nat);
  check(cn && !strcmp(cn->reason, "ping-timeout"),
        "dialing side: a silent peer ends in ping-timeout (%s)", cn ? cn->reason : "?");
  close(s);
  free(cn);
}

static void *server_accept(void *arg) {
  int lfd = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return NULL;
    int sndbuf = __atomic_load_n(&small_sndbuf, __ATOMIC_SEQ_CST);
    if (sndbuf) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    hbone_serve(fd, &plain_sec, NULL, "127.0.0.1:0", false, (hb_ping){0});
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  engine *e = engine_start("hbone-test", 100);
  hbone_init(e, sink);
  hbone_set_timing(300, 600, 60000, 5000);
  pair_lfd = listen_any(&pair_addr);
  for (int k = 0; k < D_N; k++) {
    dest_lfd[k] = listen_any(&dest_addr[k]);
    pthread_t t;
    pthread_create(&t, NULL, dest_accept, (void *)(intptr_t)k);
    pthread_detach(t);
  }
  int slfd = listen_any(&server_addr);
  pthread_t st;
  pthread_create(&st, NULL, server_accept, (void *)(intptr_t)slfd);
  pthread_detach(st);
  int base = count_fds();

  test_echo_big();
  test_initial();
  test_half_close();
  test_many();
  test_reset();
  test_client_reset();
  test_refused();
  test_dead_peer();
  test_backlog();
  test_reverse();

  // Close everything; every connection reports HB_CLOSED. Then the fds are back.
  hb_conn_stats stats[16];
  int n = hbone_stats(stats, 16);
  hbone_close_all();
  for (int i = 0; i < n && i < 16; i++) free(wait_closed(stats[i].id));
  pthread_mutex_lock(&lock);  // the destinations see their EOF or RST and close too
  while (dest_live > 0) pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  check(count_fds() == base, "fds back to the baseline after closing all (%d, %d)", count_fds(),
        base);

  // The listener thread must not take the raw connection of the bad-preface test.
  shutdown(slfd, SHUT_RDWR);
  close(slfd);
  int lfd2 = listen_any(&server_addr);
  test_bad_preface(lfd2);
  close(lfd2);

  engine_stop(e);
  check(cfg_refs == 0, "config references all dropped (%d)", cfg_refs);
  drop_reports();
  for (int k = 0; k < D_N; k++) shutdown(dest_lfd[k], SHUT_RDWR), close(dest_lfd[k]);
  close(pair_lfd);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
