// SOCKS5 server side (RFC 1928, RFC 1929) in plain C, no QuickJS: the
// parsers of what a client sends before its CONNECT is routed, and the
// replies. They answer as src/core/socks.ts does, error texts included (the
// log line names the bad value the same way on both paths);
// test/unit/socks5-native.test.ts holds them to that with a seeded fuzz.
#ifndef UGATE_SOCKS5_H
#define UGATE_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { SOCKS5_BAD = -1, SOCKS5_NEED = 0, SOCKS5_OK = 1 };

enum {
  SOCKS5_REP_GENERAL = 0x01,
  SOCKS5_REP_NOT_ALLOWED = 0x02,
  SOCKS5_REP_CMD_UNSUPPORTED = 0x07,
  SOCKS5_REP_ATYP_UNSUPPORTED = 0x08,
};

// Why an input is refused, and (a request) the reply code to send first.
typedef struct {
  char text[200];
  uint8_t reply;
} socks5_error;

// VER NMETHODS METHODS. OK: *used bytes, *method the choice (0x00 without
// users, 0x02 with; 0xff when the client does not offer it).
int socks5_parse_greeting(const uint8_t *p, size_t n, bool users, size_t *used, uint8_t *method,
                          socks5_error *e);

// RFC 1929: VER(0x01) ULEN UNAME PLEN PASSWD, both strict UTF-8 (may be empty).
typedef struct {
  const uint8_t *user, *pass;  // inside p
  uint8_t ulen, plen;
} socks5_userpass;
int socks5_parse_userpass(const uint8_t *p, size_t n, size_t *used, socks5_userpass *out,
                          socks5_error *e);

// VER CMD RSV ATYP DST.ADDR DST.PORT. `host` is the text JS would make: a
// dotted quad, RFC 5952 IPv6 (::ffff:a.b.c.d for v4-mapped) or the domain.
typedef struct {
  uint8_t cmd, atyp;  // atyp 1 IPv4, 3 domain, 4 IPv6
  uint16_t port;
  uint8_t addr[16];  // IPv4 / IPv6 bytes
  char host[256];
} socks5_request;
int socks5_parse_request(const uint8_t *p, size_t n, size_t *used, socks5_request *out,
                         socks5_error *e);

// IPv6 text as src/core/ip.ts formatIPv6 writes it; out holds 46 bytes.
void socks5_format_ipv6(const uint8_t a[16], char *out);
// "host:port", "[v6]:port" as formatHostPort writes it; out holds
// SOCKS5_DST_MAX bytes (a 255-byte host, brackets, ":65535", NUL).
#define SOCKS5_DST_MAX 264
void socks5_format_dst(const socks5_request *r, char *out);
// VER REP RSV ATYP BND.ADDR BND.PORT for an IPv4/IPv6 socket address (NULL:
// 0.0.0.0:0); returns its length (10 or 22).
size_t socks5_encode_reply(uint8_t code, const struct sockaddr *bound, uint8_t out[22]);
// The reply for a dial that ended with the access line's reason (loop,
// dns-error, dns-timeout, connect-timeout, connect-error with err, closed, ...).
uint8_t socks5_reply_for(const char *reason, int err);
// Whether p[0, n) is UTF-8 as src/core/bytes.ts utf8Decode accepts it.
bool socks5_utf8_valid(const uint8_t *p, size_t n);

#endif
