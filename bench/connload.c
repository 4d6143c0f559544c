// connload: the bench's small load tool (compiled by bench/run.sh at bench
// time, never installed). wrk cannot speak SOCKS5, and the memory and start-up
// measures need a client that holds connections and a clock on "accepting".
//
//   connload http PORT HOST:PORT|- CONNS THREADS SECONDS
//       Connection-per-request HTTP load on 127.0.0.1:PORT. With a HOST:PORT
//       (IPv4 literal) every request first opens a SOCKS5 CONNECT to it (no
//       auth; greeting and request each wait for their reply, as curl does).
//       Prints: requests= errors= seconds= rps= p50_us= p99_us=
//   connload echo PORT
//       epoll echo server on 127.0.0.1:PORT (the far end of idle relays).
//   connload hold PORT N
//       Opens N connections to 127.0.0.1:PORT, one byte round trip on each (so
//       every one is relayed end to end), prints "held N", keeps them open
//       until stdin reaches EOF.
//   connload startup PORT TIMEOUT_MS CMD...
//       Starts CMD, polls connect() to 127.0.0.1:PORT every 100 µs, prints
//       the ms from fork to the first accepted connect and the CPU ms CMD's
//       threads had used by then (its children's not counted), then stops CMD.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// ---------------------------------------------------------------- http load
enum { S_CONNECT, S_GREET, S_REPLY, S_BODY };

typedef struct {
  int fd, state;
  size_t got;  // bytes of the current SOCKS reply read so far
  unsigned char reply[262];
  uint64_t t0;
} conn;

typedef struct {
  int port, conns, socks;
  struct sockaddr_in target;
  uint64_t end;
  uint64_t requests, errors;
  uint32_t *lat;  // µs per request
  size_t nlat, cap;
} worker;

static const char request[] = "GET /small HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

static void conn_open(worker *w, int ep, conn *c) {
  struct sockaddr_in a = loopback(w->port);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  c->state = S_CONNECT;
  c->got = 0;
  c->t0 = now_ns();
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void conn_done(worker *w, int ep, conn *c, int ok) {
  close(c->fd);
  if (ok) {
    if (w->nlat == w->cap) {
      w->cap = w->cap ? w->cap * 2 : 65536;
      w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
      if (!w->lat) die("realloc");
    }
    w->lat[w->nlat++] = (uint32_t)((now_ns() - c->t0) / 1000);
    w->requests++;
  } else {
    w->errors++;
  }
  if (now_ns() < w->end)
    conn_open(w, ep, c);
  else
    c->fd = -1;
}

// 1 when all was sent (these writes are tiny: a fresh socket takes them whole), else -1
static int send_all(int fd, const void *p, size_t n) {
  return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 1 : -1;
}

// Length of a SOCKS5 CONNECT reply once its first 5 bytes are known.
static size_t socks_reply_len(const unsigned char *r) {
  switch (r[3]) {
    case 1:
      return 10;
    case 4:
      return 22;
    case 3:
      return 7 + (size_t)r[4];
    default:
      return 0;
  }
}

// One step of a connection's state machine: 1 = go on, 0 = done, -1 = failed.
static int conn_step(worker *w, int ep, conn *c, uint32_t events) {
  if (c->state == S_CONNECT) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (events & EPOLLERR)) return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
    c->state = w->socks ? S_GREET : S_BODY;
    return w->socks ? send_all(c->fd, "\5\1\0", 3) : send_all(c->fd, request, sizeof request - 1);
  }
  if (c->state == S_BODY) {
    char buf[16384];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0 || (n < 0 && errno == EAGAIN)) return 1;
    return n == 0 ? 0 : -1;
  }
  // SOCKS: the method reply (2 bytes), then the CONNECT reply
  size_t want = 2;
  if (c->state == S_REPLY) want = c->got < 5 ? 5 : socks_reply_len(c->reply);
  if (want == 0) return -1;
  ssize_t n = recv(c->fd, c->reply + c->got, want - c->got, 0);
  if (n < 0 && errno == EAGAIN) return 1;
  if (n <= 0) return -1;
  c->got += (size_t)n;
  if (c->state == S_REPLY && c->got == 5) want = socks_reply_len(c->reply);
  if (c->got < want) return 1;
  if (c->state == S_GREET) {
    if (c->reply[0] != 5 || c->reply[1] != 0) return -1;
    unsigned char r[10] = {5, 1, 0, 1};
    memcpy(r + 4, &w->target.sin_addr, 4);
    memcpy(r + 8, &w->target.sin_port, 2);
    c->state = S_REPLY;
    c->got = 0;
    return send_all(c->fd, r, sizeof r);
  }
  if (c->reply[1] != 0) return -1;
  c->state = S_BODY;
  return send_all(c->fd, request, sizeof request - 1);
}

static void *worker_run(void *arg) {
  worker *w = arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  conn *cs = calloc((size_t)w->conns, sizeof *cs);
  for (int i = 0; i < w->conns; i++) conn_open(w, ep, &cs[i]);
  int live = w->conns;
  struct epoll_event evs[64];
  while (live > 0) {
    int n = epoll_wait(ep, evs, 64, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      int r = conn_step(w, ep, c, evs[i].events);
      if (r == 1) continue;
      conn_done(w, ep, c, r == 0);
      if (c->fd < 0) live--;
    }
    if (n == 0 && now_ns() > w->end + 5000000000u) break;  // stuck peers: give up
  }
  free(cs);
  close(ep);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int http_load(int port, const char *target, int conns, int threads, int seconds) {
  if (conns < threads || threads < 1 || seconds < 1) {
    fprintf(stderr, "connload: need CONNS >= THREADS >= 1 and SECONDS >= 1\n");
    return 2;
  }
  struct sockaddr_in t = {.sin_family = AF_INET};
  int socks = strcmp(target, "-") != 0;
  if (socks) {
    char host[64];
    int tport;
    if (sscanf(target, "%63[0-9.]:%d", host, &tport) != 2 ||
        inet_pton(AF_INET, host, &t.sin_addr) != 1) {
      fprintf(stderr, "connload: bad SOCKS target '%s' (IPv4:PORT)\n", target);
      return 2;
    }
    t.sin_port = htons((uint16_t)tport);
  }
  worker *ws = calloc((size_t)threads, sizeof *ws);
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  uint64_t t0 = now_ns();
  for (int i = 0; i < threads; i++) {
    ws[i] = (worker){.port = port,
                     .conns = conns / threads + (i < conns % threads),
                     .socks = socks,
                     .target = t,
                     .end = t0 + (uint64_t)seconds * 1000000000u};
    if (pthread_create(&tids[i], NULL, worker_run, &ws[i])) die("pthread_create");
  }
  uint64_t requests = 0, errors = 0;
  size_t n = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(tids[i], NULL);
    requests += ws[i].requests;
    errors += ws[i].errors;
    n += ws[i].nlat;
  }
  double secs = (double)(now_ns() - t0) / 1e9;
  uint32_t *all = malloc((n + 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < threads; i++) {
    memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
    k += ws[i].nlat;
    free(ws[i].lat);
  }
  qsort(all, n, sizeof *all, cmp_u32);
  printf("requests=%llu errors=%llu seconds=%.3f rps=%.0f p50_us=%u p99_us=%u\n",
         (unsigned long long)requests, (unsigned long long)errors, secs, (double)requests / secs,
         n ? all[n / 2] : 0, n ? all[n * 99 / 100] : 0);
  free(all);
  free(ws);
  free(tids);
  return 0;
}

// ---------------------------------------------------------------- echo, hold
static _Noreturn void echo_server(int port) {
  struct sockaddr_in a = loopback(port);
  int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0)
    die("echo: bind/listen");
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[64];
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      char buf[4096];
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0)
        send(fd, buf, (size_t)r, MSG_NOSIGNAL);
      else if (r == 0 || errno != EAGAIN)
        close(fd);
    }
  }
}

static int hold(int port, int n) {
  int *fds = calloc((size_t)n, sizeof *fds);
  struct sockaddr_in a = loopback(port);
  for (int i = 0; i < n; i++) {
    char b = 'x';
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) die("hold: connect");
    if (send(fds[i], &b, 1, MSG_NOSIGNAL) != 1 || recv(fds[i], &b, 1, 0) != 1) {
      fprintf(stderr, "connload: hold: connection %d got no echo through the relay\n", i + 1);
      return 1;
    }
  }
  printf("held %d\n", n);
  fflush(stdout);
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {
  }
  for (int i = 0; i < n; i++) close(fds[i]);
  free(fds);
  return 0;
}

// ---------------------------------------------------------------- startup
// CPU time of pid's threads so far (the first field of each one's schedstat,
// in ns): unlike the wall clock, barely moved by other work on the machine.
static double task_cpu_ms(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (!d) return 0;
  unsigned long long sum = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char f[400];
    snprintf(f, sizeof f, "%s/%s/schedstat", path, e->d_name);
    FILE *fp = fopen(f, "r");
    unsigned long long ns = 0;
    if (fp) {
      if (fscanf(fp, "%llu", &ns) != 1) ns = 0;
      fclose(fp);
    }
    sum += ns;
  }
  closedir(d);
  return (double)sum / 1e6;
}

static int startup(int port, int timeout_ms, char **cmd) {
  struct sockaddr_in a = loopback(port);
  uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)timeout_ms * 1000000u;
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execvp(cmd[0], cmd);
    _exit(127);
  }
  int ok = 0;
  while (now_ns() < deadline) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) ok = 1;
    close(fd);
    if (ok) break;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      fprintf(stderr, "connload: startup: %s exited before accepting\n", cmd[0]);
      return 1;
    }
    struct timespec ts = {.tv_nsec = 100000};
    nanosleep(&ts, NULL);
  }
  uint64_t t1 = now_ns();
  double cpu_ms = ok ? task_cpu_ms(pid) : 0;
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  if (!ok) {
    fprintf(stderr, "connload: startup: nothing accepted on port %d within %d ms\n", port,
            timeout_ms);
    return 1;
  }
  printf("%.2f %.2f\n", (double)(t1 - t0) / 1e6, cpu_ms);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 7 && !strcmp(argv[1], "http"))
    return http_load(atoi(argv[2]), argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
  if (argc == 3 && !strcmp(argv[1], "echo")) echo_server(atoi(argv[2]));
  if (argc == 4 && !strcmp(argv[1], "hold")) return hold(atoi(argv[2]), atoi(argv[3]));
  if (argc >= 5 && !strcmp(argv[1], "startup"))
    return startup(atoi(argv[2]), atoi(argv[3]), argv + 4);
  fprintf(stderr,
          "usage: connload http PORT HOST:PORT|- CONNS THREADS SECONDS | echo PORT | hold PORT N | "
          "startup PORT TIMEOUT_MS CMD...\n");
  return 2;
}
