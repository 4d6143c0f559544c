// bench/udp-flood.c — the load of bench/udp.sh's flood mode (not a test): a
// UDP sender and a counting receiver that cost little CPU per datagram
// (sendmmsg / recvmmsg, 64 at a time), so that on a small machine the relay
// between them, not a single-threaded iperf3 server, is what limits.
//   udp-flood send ADDR PORT SIZE SECONDS FLOWS
//     FLOWS sockets connected to ADDR:PORT, each in turn sends a batch of 64
//     datagrams of SIZE bytes, as fast as the kernel takes them, for SECONDS.
//     Prints "sent N".
//   udp-flood recv ADDR PORT
//     Counts the datagrams arriving on ADDR:PORT until none came for 1 s
//     after the first (fails when none came within 60 s). Prints "received N bytes B seconds S" (S:
//     first to last datagram).
//   udp-flood relay ADDR PORT TO_ADDR TO_PORT
//     The yardstick of a user-space relay (bench/udp.sh's minimal peer): one
//     flow, no TPROXY. Datagrams arriving on ADDR:PORT go to TO_ADDR:TO_PORT
//     from one connected socket, the replies back to the client that sent
//     last. Each direction is a thread blocked in recvmmsg (MSG_WAITFORONE,
//     64 at a time) that passes what it got on in one sendmmsg: two system
//     calls per wake, no event loop, no flow table, no GSO. Prints "held:
//     relaying" once bound; runs until killed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM_MAX 65536

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static struct sockaddr_in addr_of(const char *host, const char *port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || atoi(port) <= 0 || atoi(port) > 65535) {
    fprintf(stderr, "udp-flood: bad address '%s' port '%s'\n", host, port);
    exit(2);
  }
  return a;
}

static uint8_t buf[BATCH][DGRAM_MAX];
static struct mmsghdr mm[BATCH];
static struct iovec iov[BATCH];

static int do_send(struct sockaddr_in to, long size, long seconds, long flows) {
  int *fds = calloc((size_t)flows, sizeof *fds);
  if (!fds) die("calloc");
  for (long f = 0; f < flows; f++) {
    fds[f] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[f] < 0 || connect(fds[f], (struct sockaddr *)&to, sizeof to) < 0) die("socket");
  }
  for (int i = 0; i < BATCH; i++) {
    memset(buf[i], 0x5a, (size_t)size);
    iov[i] = (struct iovec){buf[i], (size_t)size};
    mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
  }
  unsigned long long sent = 0;
  double end = now_s() + (double)seconds;
  for (long f = 0; now_s() < end; f = (f + 1) % flows) {
    int n = sendmmsg(fds[f], mm, BATCH, 0);
    // ECONNREFUSED: an ICMP error of an earlier datagram (no one listening yet); go on.
    if (n > 0) sent += (unsigned long long)n;
  }
  printf("sent %llu\n", sent);
  return 0;
}

static int do_recv(struct sockaddr_in at) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int big = 4 << 20;
  if (fd < 0 || bind(fd, (struct sockaddr *)&at, sizeof at) < 0) die("bind");
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  for (int i = 0; i < BATCH; i++) {
    iov[i] = (struct iovec){buf[i], DGRAM_MAX};
    mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
  }
  printf("held: receiving\n");  // bench/lib.sh wait_held waits for it
  fflush(stdout);
  unsigned long long got = 0, bytes = 0;
  double first = 0, last = 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  for (;;) {
    // Before the first datagram: at most 60 s (a peer that relays nothing fails the run).
    int r = poll(&p, 1, got ? 1000 : 60000);
    if (r == 0 && got == 0) {
      fprintf(stderr, "udp-flood recv: no datagram within 60 s\n");
      return 1;
    }
    if (r == 0) break;
    if (r < 0) die("poll");
    int n = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) continue;
    last = now_s();
    if (got == 0) first = last;
    got += (unsigned long long)n;
    for (int i = 0; i < n; i++) bytes += mm[i].msg_len;
  }
  printf("received %llu bytes %llu seconds %.6f\n", got, bytes, last - first);
  return 0;
}

// relay: the client's address, written by the up thread when it changes,
// read by the down thread per batch.
static pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sockaddr_in client;
static int listen_fd, out_fd;
static uint8_t down_buf[BATCH][DGRAM_MAX];

// Receive up to BATCH datagrams on `from` (blocking until one), send them on
// `to` (to `dst`, or connected when NULL); forever.
static void relay_loop(int from, int to, uint8_t (*b)[DGRAM_MAX], bool up) {
  struct mmsghdr rm[BATCH], sm[BATCH];
  struct iovec riov[BATCH], siov[BATCH];
  struct sockaddr_in src[BATCH], dst;
  for (int i = 0; i < BATCH; i++) riov[i] = (struct iovec){b[i], DGRAM_MAX};
  for (;;) {
    for (int i = 0; i < BATCH; i++)
      rm[i].msg_hdr = (struct msghdr){
          .msg_name = &src[i], .msg_namelen = sizeof src[i], .msg_iov = &riov[i], .msg_iovlen = 1};
    int n = recvmmsg(from, rm, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    if (up) {
      struct sockaddr_in *last = &src[n - 1];
      if (last->sin_port != client.sin_port || last->sin_addr.s_addr != client.sin_addr.s_addr) {
        pthread_mutex_lock(&client_lock);
        client = *last;
        pthread_mutex_unlock(&client_lock);
      }
    } else {
      pthread_mutex_lock(&client_lock);
      dst = client;
      pthread_mutex_unlock(&client_lock);
      if (dst.sin_port == 0) continue;  // no client yet
    }
    for (int i = 0; i < n; i++) {
      siov[i] = (struct iovec){b[i], rm[i].msg_len};
      sm[i].msg_hdr = (struct msghdr){.msg_name = up ? NULL : &dst,
                                      .msg_namelen = up ? 0 : sizeof dst,
                                      .msg_iov = &siov[i],
                                      .msg_iovlen = 1};
    }
    // A refused datagram (say ECONNREFUSED from an ICMP error) is dropped, as by any relay.
    for (int k = 0; k < n;) {
      int m = sendmmsg(to, sm + k, (unsigned)(n - k), 0);
      k += m > 0 ? m : 1;
    }
  }
}

static void *relay_down(void *arg) {
  (void)arg;
  relay_loop(out_fd, listen_fd, down_buf, false);
  return NULL;
}

static int do_relay(struct sockaddr_in at, struct sockaddr_in to) {
  listen_fd = socket(AF_INET, SOCK_DGRAM, 0);
  out_fd = socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1, big = 4 << 20;  // ugate's listener has 4 MiB too
  if (listen_fd < 0 || out_fd < 0 ||
      setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(listen_fd, (struct sockaddr *)&at, sizeof at) < 0 ||
      connect(out_fd, (struct sockaddr *)&to, sizeof to) < 0)
    die("relay: socket");
  if (setsockopt(listen_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
    setsockopt(listen_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  pthread_t t;
  if (pthread_create(&t, NULL, relay_down, NULL) != 0) die("pthread_create");
  printf("held: relaying\n");  // bench/lib.sh wait_held waits for it
  fflush(stdout);
  relay_loop(listen_fd, out_fd, buf, true);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 7 && strcmp(argv[1], "send") == 0) {
    long size = atol(argv[4]), seconds = atol(argv[5]), flows = atol(argv[6]);
    if (size < 1 || size > 65507 || seconds < 1 || flows < 1 || flows > 4096) {
      fprintf(stderr, "udp-flood send: SIZE 1-65507, SECONDS >= 1, FLOWS 1-4096\n");
      return 2;
    }
    return do_send(addr_of(argv[2], argv[3]), size, seconds, flows);
  }
  if (argc == 4 && strcmp(argv[1], "recv") == 0) return do_recv(addr_of(argv[2], argv[3]));
  if (argc == 6 && strcmp(argv[1], "relay") == 0)
    return do_relay(addr_of(argv[2], argv[3]), addr_of(argv[4], argv[5]));
  fprintf(stderr,
          "usage: udp-flood send ADDR PORT SIZE SECONDS FLOWS | udp-flood recv ADDR PORT |"
          " udp-flood relay ADDR PORT TO_ADDR TO_PORT\n");
  return 2;
}
