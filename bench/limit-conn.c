// limit-conn: the conn section's yardstick (compiled by bench/run.sh at bench
// time, never installed): about the least work a relay can do per short
// connection, so the report can show whether a connections/s or CPU target
// is within any relay's reach on the machine.
//
//   limit-conn forward PORT TARGET_PORT   127.0.0.1:PORT → 127.0.0.1:TARGET_PORT
//   limit-conn socks PORT                 SOCKS5 on 127.0.0.1:PORT: no auth,
//       CONNECT to an IPv4 address or a domain that is an IPv4 literal
//
// One thread, one epoll set, edge-triggered. Per connection: accept4,
// socket + TCP_NODELAY + connect, one epoll_ctl ADD per socket (never MOD or
// DEL: close removes them), recv/send through one shared buffer (a
// per-connection copy only for what a peer did not take), no recv that can
// only say EAGAIN or 0 (see pump), shutdown to pass on the first EOF, close
// on the second. Copy, not splice: for a few hundred bytes the pipe costs
// more than it saves (docs/performance.md). A plain close (no SO_LINGER
// abort): the relay pays what every relay pays.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { C_GREET, C_REQUEST, C_CONNECTING, C_RELAY, C_DEAD };

typedef struct {
  int fd[2];        // 0: client, 1: target (-1 until dialled)
  int state;        // C_*
  int socks;        // a SOCKS5 client: it waits for a reply to its CONNECT
  int rd[2];        // fd[i] may have bytes to read (an edge came, no short read since)
  int hup[2];       // fd[i]'s FIN has arrived (EPOLLRDHUP): a short read reached it
  int eof[2];       // fd[i]'s FIN was read (and passed on)
  char *pend[2];    // bytes read from fd[i] that fd[!i] did not take yet
  size_t plen[2];   // their number
  size_t poff[2];   // how many of them were sent already
  size_t hlen;      // SOCKS5: handshake bytes read so far
  uint8_t hs[520];  // SOCKS5: the handshake bytes
  void *next_dead;  // freed once the events of this epoll_wait are handled
} conn;

static int ep;
static conn *dead;
static struct sockaddr_in target;  // forward mode
static char buf[65536];            // shared by every connection: no copy stays here

static void die(const char *what) {
  perror(what);
  exit(1);
}

// epoll data: the connection, its low bit the side (conn is at least 4-aligned)
static void watch(conn *c, int side) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.u64 = (uintptr_t)c | (uintptr_t)side};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd[side], &ev) < 0) die("epoll_ctl");
}

// Closes now; frees after the batch, which may still hold events for c.
static void conn_end(conn *c) {
  for (int i = 0; i < 2; i++) {
    if (c->fd[i] >= 0) close(c->fd[i]);
    free(c->pend[i]);
  }
  c->state = C_DEAD;
  c->next_dead = dead;
  dead = c;
}

// Nonblocking connect to a; 0 when under way (or done), -1 on failure.
static int dial(conn *c, const struct sockaddr_in *a) {
  c->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd[1] < 0) return -1;
  int one = 1;  // as every relay does: no Nagle delay on relayed small writes
  setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd[1], (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS)
    return -1;
  c->state = C_CONNECTING;
  watch(c, 1);
  return 0;
}

// Sends what fd[from] left pending to fd[!from]: 1 = all gone, 0 = some left, -1 = error.
static int flush(conn *c, int from) {
  while (c->poff[from] < c->plen[from]) {
    ssize_t n = send(c->fd[!from], c->pend[from] + c->poff[from], c->plen[from] - c->poff[from],
                     MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->poff[from] += (size_t)n;
  }
  free(c->pend[from]);
  c->pend[from] = NULL;
  c->plen[from] = c->poff[from] = 0;
  return 1;
}

// Keeps p[0..n) for fd[!from] to take later.
static int keep(conn *c, int from, const char *p, size_t n) {
  c->pend[from] = malloc(n);
  if (!c->pend[from]) return -1;
  memcpy(c->pend[from], p, n);
  c->plen[from] = n;
  c->poff[from] = 0;
  return 0;
}

// Moves fd[from] → fd[!from] until fd[from] is drained or fd[!from] full:
// 0 = go on, 1 = both directions ended (close), -1 = error. A read shorter
// than the buffer emptied the socket, so no recv is spent on EAGAIN, and
// after EPOLLRDHUP none on the 0 that would follow.
static int pump(conn *c, int from) {
  if (c->pend[from]) {
    int r = flush(c, from);
    if (r <= 0) return r;
  }
  while (c->rd[from] && !c->eof[from]) {
    ssize_t n = recv(c->fd[from], buf, sizeof buf, 0);
    if (n < 0) {
      if (errno != EAGAIN) return -1;
      c->rd[from] = 0;
      return 0;
    }
    if (n > 0) {
      ssize_t m = send(c->fd[!from], buf, (size_t)n, MSG_NOSIGNAL);
      if (m < 0 && errno != EAGAIN) return -1;
      if (m < 0) m = 0;
      if (m < n) return keep(c, from, buf + m, (size_t)(n - m));
      if ((size_t)n == sizeof buf) continue;
      if (!c->hup[from]) {
        c->rd[from] = 0;
        return 0;
      }
    }
    c->eof[from] = 1;
    if (c->eof[!from]) return 1;  // close() sends the last FIN: no shutdown
    if (shutdown(c->fd[!from], SHUT_WR) < 0) return -1;
  }
  return 0;
}

// SOCKS5 reply with code rep (bound address left 0.0.0.0:0, as clients ignore it).
static int socks_reply(conn *c, uint8_t rep) {
  uint8_t r[10] = {5, rep, 0, 1};
  return send(c->fd[0], r, sizeof r, MSG_NOSIGNAL) == (ssize_t)sizeof r ? 0 : -1;
}

// Reads and parses the SOCKS5 greeting and CONNECT request: 0 = go on, -1 = close.
static int handshake(conn *c) {
  size_t room = sizeof c->hs - c->hlen;
  ssize_t n = recv(c->fd[0], c->hs + c->hlen, room, 0);
  if (n < 0 && errno == EAGAIN) c->rd[0] = 0;
  if (n < 0) return errno == EAGAIN ? 0 : -1;
  if (n == 0) return -1;
  if ((size_t)n < room) c->rd[0] = 0;  // drained (as in pump)
  c->hlen += (size_t)n;
  uint8_t *h = c->hs;
  if (c->state == C_GREET) {
    if (c->hlen < 2 || c->hlen < 2u + h[1]) return 0;
    if (h[0] != 5 || !memchr(h + 2, 0, h[1])) return -1;  // only "no authentication"
    size_t used = 2u + h[1];
    if (send(c->fd[0], "\5\0", 2, MSG_NOSIGNAL) != 2) return -1;
    memmove(h, h + used, c->hlen - used);
    c->hlen -= used;
    c->state = C_REQUEST;
  }
  if (c->hlen < 5) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET};
  size_t len;
  if (h[3] == 1) {
    len = 10;
    if (c->hlen < len) return 0;
    memcpy(&a.sin_addr, h + 4, 4);
  } else if (h[3] == 3) {
    len = 7u + h[4];
    if (c->hlen < len) return 0;
    char name[256];
    memcpy(name, h + 5, h[4]);
    name[h[4]] = 0;
    if (inet_pton(AF_INET, name, &a.sin_addr) != 1) return socks_reply(c, 4), -1;
  } else {
    return socks_reply(c, 8), -1;
  }
  if (h[0] != 5 || h[1] != 1) return socks_reply(c, 7), -1;
  memcpy(&a.sin_port, h + len - 2, 2);
  // bytes sent after the request go to the target once it is connected
  if (c->hlen > len && keep(c, 0, (char *)h + len, c->hlen - len) < 0) return -1;
  if (dial(c, &a) < 0) return socks_reply(c, 5), -1;
  return 0;
}

static void on_event(conn *c, int side, uint32_t ev) {
  int r = 0;
  if (c->state == C_DEAD) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->rd[side] = 1;
  if (ev & (EPOLLRDHUP | EPOLLHUP)) c->hup[side] = 1;
  if (c->state == C_GREET || c->state == C_REQUEST) {
    if (c->rd[0]) r = handshake(c);  // not on the first, writable-only edge
  } else if (c->state == C_CONNECTING) {
    if (side == 0) return;  // the client's bytes wait in its socket
    if (ev & (EPOLLERR | EPOLLHUP)) {
      if (c->socks) socks_reply(c, 5);
      r = -1;
    } else {
      c->state = C_RELAY;
      if (c->socks && socks_reply(c, 0) < 0) r = -1;
      if (!r) r = pump(c, 0);
      if (!r) r = pump(c, 1);
    }
  } else {
    // a readable end is read; a writable one takes what its peer left pending
    if (c->rd[side]) r = pump(c, side);
    if (!r && (ev & EPOLLOUT) && c->pend[!side]) r = pump(c, !side);
  }
  if (r) conn_end(c);
}

static void on_accept(int ls, int socks) {
  for (int i = 0; i < 64; i++) {
    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != ECONNABORTED) perror("accept4");
      return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) die("calloc");
    c->fd[0] = fd;
    c->fd[1] = -1;
    watch(c, 0);
    c->socks = socks;
    if (socks)
      c->state = C_GREET;
    else if (dial(c, &target) < 0)
      conn_end(c);
  }
}

static int listen_on(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1, ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ls < 0) die("socket");
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(ls, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // accepted sockets inherit it
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) die("bind/listen");
  return ls;
}

int main(int argc, char **argv) {
  int socks = argc == 3 && !strcmp(argv[1], "socks");
  if (!socks && !(argc == 4 && !strcmp(argv[1], "forward"))) {
    fprintf(stderr, "usage: limit-conn forward PORT TARGET_PORT | socks PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (!socks) {
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(argv[3]));
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  int ls = listen_on(atoi(argv[2]));
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  // the listener level-triggered: a batch of accepts per wake, the rest next time
  struct epoll_event lev = {.events = EPOLLIN, .data.u64 = 0}, evs[256];
  if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) < 0) die("epoll_ctl");
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == 0) {
        on_accept(ls, socks);
        continue;
      }
      conn *c = (conn *)(uintptr_t)(evs[i].data.u64 & ~(uint64_t)1);
      on_event(c, (int)(evs[i].data.u64 & 1), evs[i].events);
    }
    while (dead) {
      conn *c = dead;
      dead = c->next_dead;
      free(c);
    }
  }
}
