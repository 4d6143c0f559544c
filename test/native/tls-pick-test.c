// Driver of tls_server_pick (native/tls.c) for test/unit/tls-pick.test.ts,
// which builds it with ASan/UBSan (native/build.mk, PROFILE=asan) and holds
// each answer to its own model. One input a line on stdin,
// "<suites hex> <hello hex>": our suites as 2-byte ids in order (at most 8),
// then the bytes peeked, copied into a buffer of exactly their size (ASan
// stops any read past it); one answer a line: the index picked, or -1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../native/tls.h"

static int nibble(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// hex[0..chars) into a fresh buffer of chars / 2 bytes (one byte when empty,
// never read); NULL when it is not hex.
static uint8_t *unhex(const char *hex, size_t chars) {
  if (chars % 2) return NULL;
  uint8_t *p = malloc(chars ? chars / 2 : 1);
  for (size_t i = 0; p && i < chars / 2; i++) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(p);
      return NULL;
    }
    p[i] = (uint8_t)(hi << 4 | lo);
  }
  return p;
}

int main(void) {
  static char line[2 * 70000];
  while (fgets(line, sizeof line, stdin)) {
    size_t chars = strcspn(line, "\n"), sp = strcspn(line, " ");
    if (sp >= chars || sp % 4 || sp / 4 > 8) {
      fprintf(stderr, "bad line: %.*s\n", (int)chars, line);
      return 2;
    }
    int suites[9] = {0};
    for (size_t k = 0; k < sp / 4; k++) {
      char id[5] = {line[4 * k], line[4 * k + 1], line[4 * k + 2], line[4 * k + 3], 0};
      suites[k] = (int)strtol(id, NULL, 16);
    }
    size_t n = (chars - sp - 1) / 2;
    uint8_t *p = unhex(line + sp + 1, chars - sp - 1);
    if (!p) {
      fprintf(stderr, "not hex: %.*s\n", (int)chars, line);
      return 2;
    }
    printf("%d\n", tls_server_pick(p, n, suites));
    free(p);
  }
  return 0;
}
