// A packet capture for the tests (no tcpdump needed): every frame on every
// interface of the network namespace it runs in (AF_PACKET, ETH_P_ALL),
// searched for a needle. Prints "ready" once capturing; when stdin closes it
// prints one JSON line: frames and bytes seen, frames holding the needle.
//
//   packet-capture NEEDLE
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2 || !argv[1][0]) {
    fprintf(stderr, "usage: packet-capture NEEDLE\n");
    return 2;
  }
  const char *needle = argv[1];
  size_t nlen = strlen(needle);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) {
    perror("packet-capture: socket(AF_PACKET)");
    return 1;
  }
  int big = 8 << 20;  // bursts of a bulk transfer must not overflow the queue
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  printf("ready\n");
  fflush(stdout);
  static unsigned char buf[65536 + 256];
  unsigned long long frames = 0, bytes = 0, hits = 0, drops = 0;
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0) continue;
    if (p[0].revents & POLLIN) {
      for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) break;
        size_t got = (size_t)n < sizeof buf ? (size_t)n : sizeof buf;
        frames++;
        bytes += got;
        if (memmem(buf, got, needle, nlen)) hits++;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      char c;
      if (read(0, &c, 1) <= 0) break;
    }
  }
  // Packets the kernel dropped for lack of room: a capture with drops proves less.
  struct tpacket_stats st;
  socklen_t sl = sizeof st;
  if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) drops = st.tp_drops;
  printf("{\"frames\":%llu,\"bytes\":%llu,\"hits\":%llu,\"drops\":%llu}\n", frames, bytes, hits,
         drops);
  return 0;
}
