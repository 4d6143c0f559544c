// bench/socks-udp-load.c — the load of bench/socks-udp.mjs (not a test): a
// SOCKS5 UDP client and a UDP echo server in one process on 127.0.0.1. It
// sends COUNT datagrams of SIZE payload bytes to an association's relay, in
// bursts of 64 (one real sendmmsg), each behind the header naming its own
// echo socket; the echo answers each; a burst's replies are awaited before
// the next (a lost one: after 100 ms). The first datagram goes alone and may
// wait 3 s for its route. Prints "sent received lost".
//   socks-udp-load RELAY_PORT SIZE COUNT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BURST 64
#define DGRAM_MAX 65536

static int udp_socket(struct sockaddr_in *bound) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t n = sizeof *bound;
  int big = 4 << 20;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)bound, &n) < 0) {
    perror("socket");
    exit(1);
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  return fd;
}

static uint8_t out[BURST][10 + DGRAM_MAX], in[BURST][DGRAM_MAX];
static struct sockaddr_in names[BURST];
static struct mmsghdr sm[BURST], rm[BURST];
static struct iovec siov[BURST], riov[BURST];

int main(int argc, char **argv) {
  long relay = argc == 4 ? atol(argv[1]) : 0, size = argc == 4 ? atol(argv[2]) : -1;
  long count = argc == 4 ? atol(argv[3]) : 0;
  if (relay <= 0 || relay > 65535 || size < 0 || size > 65507 - 10 || count <= 0) {
    fprintf(stderr, "usage: socks-udp-load RELAY_PORT SIZE(0..65497) COUNT(>0)\n");
    return 2;
  }
  struct sockaddr_in ca, ea;
  int c = udp_socket(&ca), e = udp_socket(&ea);
  struct sockaddr_in ra = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)relay),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  // RSV FRAG ATYP=1 127.0.0.1 the echo's port
  uint8_t hdr[10] = {0, 0, 0, 1, 127, 0, 0, 1, 0, 0};
  memcpy(hdr + 8, &ea.sin_port, 2);
  for (int i = 0; i < BURST; i++) {
    memcpy(out[i], hdr, sizeof hdr);
    memset(out[i] + sizeof hdr, 7, (size_t)size);
    siov[i] = (struct iovec){out[i], sizeof hdr + (size_t)size};
    sm[i].msg_hdr = (struct msghdr){
        .msg_name = &ra, .msg_namelen = sizeof ra, .msg_iov = &siov[i], .msg_iovlen = 1};
  }
  long sent = 0, got = 0, lost = 0;
  while (sent < count) {
    int k = sendmmsg(c, sm, sent == 0 ? 1 : BURST, 0);
    if (k <= 0) {
      perror("sendmmsg");
      return 1;
    }
    sent += k;
    long want = got + k;
    while (got < want) {
      struct pollfd p[2] = {{c, POLLIN, 0}, {e, POLLIN, 0}};
      if (poll(p, 2, sent == 1 ? 3000 : 100) <= 0) {
        lost += want - got;
        break;
      }
      for (int s = 0; s < 2; s++) {
        if (!(p[s].revents & POLLIN)) continue;
        for (int i = 0; i < BURST; i++) {
          riov[i] = (struct iovec){in[i], sizeof in[i]};
          rm[i].msg_hdr = (struct msghdr){.msg_name = &names[i],
                                          .msg_namelen = sizeof names[i],
                                          .msg_iov = &riov[i],
                                          .msg_iovlen = 1};
        }
        int r = recvmmsg(p[s].fd, rm, BURST, MSG_DONTWAIT, NULL);
        if (r <= 0) continue;
        if (s == 0) {
          got += r;
          continue;
        }
        for (int i = 0; i < r; i++) riov[i].iov_len = rm[i].msg_len;  // each back to its sender
        sendmmsg(e, rm, (unsigned)r, 0);
      }
    }
  }
  printf("%ld %ld %ld\n", sent, got, lost);
  close(c);
  close(e);
  return 0;
}
