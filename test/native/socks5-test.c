// Driver of the SOCKS5 server parsers (native/socks5.c) for
// test/unit/socks5-native.test.ts, which builds it with ASan/UBSan and holds
// each answer to src/core/socks.ts's on the same bytes. One input a line on
// stdin, "<g|G|u|r> <hex>" (g: greeting without users, G: with users,
// u: RFC 1929 user/pass, r: request), copied into a buffer of exactly its
// size (ASan stops any read past it); one answer a line:
//   need                                         more bytes wanted
//   bad <reply> <text>                           refused (reply: requests only)
//   ok <used> <method>                           greeting
//   ok <used> <user hex> <pass hex>              user/pass ("-" for empty)
//   ok <used> <cmd> <atyp> <port> <dst> <host>   request (dst as formatHostPort)
#define _GNU_SOURCE
#include "../../native/socks5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nibble(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void put_hex(const uint8_t *p, size_t n) {
  if (n == 0) printf("-");
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

int main(void) {
  static char line[2 * 70000];
  while (fgets(line, sizeof line, stdin)) {
    size_t chars = strcspn(line, "\n");
    if (chars < 2 || line[1] != ' ' || (chars - 2) % 2 != 0) {
      fprintf(stderr, "bad line: %.*s\n", (int)chars, line);
      return 2;
    }
    size_t n = (chars - 2) / 2;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return 2;
    for (size_t i = 0; i < n; i++) {
      int hi = nibble(line[2 + 2 * i]), lo = nibble(line[3 + 2 * i]);
      if (hi < 0 || lo < 0) {
        fprintf(stderr, "not hex: %.*s\n", (int)chars, line);
        return 2;
      }
      p[i] = (uint8_t)(hi << 4 | lo);
    }
    socks5_error e = {{0}, 0};
    size_t used = 0;
    int r;
    char kind = line[0];
    if (kind == 'g' || kind == 'G') {
      uint8_t method = 0;
      r = socks5_parse_greeting(p, n, kind == 'G', &used, &method, &e);
      if (r == SOCKS5_OK) printf("ok %zu %u\n", used, method);
    } else if (kind == 'u') {
      socks5_userpass up;
      r = socks5_parse_userpass(p, n, &used, &up, &e);
      if (r == SOCKS5_OK) {
        printf("ok %zu ", used);
        put_hex(up.user, up.ulen);
        printf(" ");
        put_hex(up.pass, up.plen);
        printf("\n");
      }
    } else if (kind == 'r') {
      socks5_request req;
      r = socks5_parse_request(p, n, &used, &req, &e);
      if (r == SOCKS5_OK) {
        char dst[SOCKS5_DST_MAX];
        socks5_format_dst(&req, dst);
        printf("ok %zu %u %u %u %s %s\n", used, req.cmd, req.atyp, req.port, dst, req.host);
      }
    } else {
      fprintf(stderr, "unknown kind %c\n", kind);
      return 2;
    }
    if (r == SOCKS5_NEED) printf("need\n");
    if (r == SOCKS5_BAD) printf("bad %u %s\n", e.reply, e.text);
    free(p);
  }
  return 0;
}
