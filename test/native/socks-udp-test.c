// Driver of the SOCKS5 UDP header parser (native/socks_udp.c) for
// test/unit/socks-udp.test.ts, which builds it with ASan/UBSan and judges
// its answers. Reads one datagram a line, in hex, from stdin; each goes into
// a buffer of exactly its size (ASan stops any read past it) and is answered
// with one line:
//   <code>                               refused: 0 malformed, -1 a fragment
//   <len> <host> <port> <taken>          parsed: the header's length, the
//                                        destination, and what
//                                        socks_udp_take_header makes of it:
//                                        <len>/<family>/<addr>/<port>, or - (0)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../native/socks_udp.h"

static int nibble(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(void) {
  static char line[2 * 70000];
  while (fgets(line, sizeof line, stdin)) {
    size_t chars = strcspn(line, "\n");
    if (chars % 2 != 0) {
      fprintf(stderr, "odd hex line\n");
      return 2;
    }
    size_t n = chars / 2;
    uint8_t *p = malloc(n);
    if (!p && n > 0) return 2;
    for (size_t i = 0; i < n; i++) {
      int hi = nibble(line[2 * i]), lo = nibble(line[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        fprintf(stderr, "not hex: %.*s\n", (int)chars, line);
        return 2;
      }
      p[i] = (uint8_t)(hi << 4 | lo);
    }
    int h = socks_udp_parse_header(p, n);
    if (h <= 0) {
      printf("%d\n", h);
    } else {
      char host[256];
      uint16_t port;
      socks_udp_header_dest(p, (size_t)h, host, &port);
      printf("%d %s %u ", h, host, port);
      udp_key k;
      size_t t = socks_udp_take_header(p, n, &k);
      if (t == 0) {
        printf("-\n");
      } else {
        char addr[INET6_ADDRSTRLEN];
        inet_ntop(k.family == 4 ? AF_INET : AF_INET6, k.addr, addr, sizeof addr);
        printf("%zu/%u/%s/%u\n", t, k.family, addr, k.port);
      }
    }
    free(p);
  }
  return 0;
}
