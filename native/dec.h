// Numbers as decimal text without printf, for what is written once per
// connection (a SOCKS5 CONNECT's host, the access line, the client's
// address): snprintf was a third of the loop thread's instructions per
// forward connection and ≈ 2 800 of a handshake parse's ≈ 4 100 (callgrind).
#ifndef UGATE_DEC_H
#define UGATE_DEC_H

#include <stdint.h>

// v in decimal at p (at most 20 bytes, no NUL); returns the end.
static inline char *put_dec(char *p, uint64_t v) {
  char t[20];
  int n = 0;
  do t[n++] = (char)('0' + v % 10);
  while (v /= 10);
  while (n > 0) *p++ = t[--n];
  return p;
}

// b as a dotted IPv4 address at p (at most 15 bytes, no NUL); returns the end.
static inline char *put_ipv4(char *p, const uint8_t b[4]) {
  for (int i = 0; i < 4; i++) {
    if (i) *p++ = '.';
    p = put_dec(p, b[i]);
  }
  return p;
}

#endif
