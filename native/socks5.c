// SOCKS5 server-side parsing and replies (socks5.h). Every check is on the
// bytes seen so far, as in src/core/socks.ts, so a bad field is refused
// before the rest arrives.
#define _GNU_SOURCE
#include "socks5.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dec.h"

// showBytes (src/core/bytes.ts): at most 40 bytes in double quotes, printable
// ASCII as is (" and \ escaped), others as \xNN, ... inside the quotes when cut.
static void show_bytes(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t stop = n < 40 ? n : 40, o = 0;
  char tmp[200];
  tmp[o++] = '"';
  for (size_t i = 0; i < stop; i++) {
    uint8_t b = p[i];
    if (b == '"' || b == '\\') {
      tmp[o++] = '\\';
      tmp[o++] = (char)b;
    } else if (b >= 0x20 && b < 0x7f) {
      tmp[o++] = (char)b;
    } else {
      o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\x%02x", b);
    }
  }
  if (n > stop) o += (size_t)snprintf(tmp + o, sizeof tmp - o, "...");
  tmp[o++] = '"';
  tmp[o] = 0;
  snprintf(out, cap, "%s", tmp);
}

__attribute__((format(printf, 3, 4))) static int bad(socks5_error *e, uint8_t reply,
                                                     const char *fmt, ...);
static int bad(socks5_error *e, uint8_t reply, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->text, sizeof e->text, fmt, ap);
  va_end(ap);
  e->reply = reply;
  return SOCKS5_BAD;
}

int socks5_parse_greeting(const uint8_t *p, size_t n, bool users, size_t *used, uint8_t *method,
                          socks5_error *e) {
  if (n < 1) return SOCKS5_NEED;
  if (p[0] != 5) return bad(e, 0, "socks5: unsupported version 0x%02x in greeting", p[0]);
  if (n < 2) return SOCKS5_NEED;
  if (p[1] == 0)
    return bad(e, 0, "socks5: greeting offers no authentication methods (NMETHODS 0x00)");
  if (n < 2u + p[1]) return SOCKS5_NEED;
  uint8_t want = users ? 0x02 : 0x00;
  *method = memchr(p + 2, want, p[1]) ? want : 0xff;
  *used = 2u + p[1];
  return SOCKS5_OK;
}

bool socks5_utf8_valid(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n;) {
    uint8_t b = p[i];
    uint32_t cp, min;
    size_t k;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      cp = b & 0x1f, k = 1, min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      cp = b & 0x0f, k = 2, min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      cp = b & 0x07, k = 3, min = 0x10000;
    } else {
      return false;
    }
    if (i + k >= n) return false;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += k + 1;
  }
  return true;
}

int socks5_parse_userpass(const uint8_t *p, size_t n, size_t *used, socks5_userpass *out,
                          socks5_error *e) {
  if (n < 1) return SOCKS5_NEED;
  if (p[0] != 1)
    return bad(e, 0, "socks5: unsupported username/password auth version 0x%02x", p[0]);
  if (n < 2) return SOCKS5_NEED;
  size_t ulen = p[1];
  if (n < 3 + ulen) return SOCKS5_NEED;
  size_t plen = p[2 + ulen], end = 3 + ulen + plen;
  if (n < end) return SOCKS5_NEED;
  if (!socks5_utf8_valid(p + 2, ulen)) {
    char shown[200];
    show_bytes(p + 2, ulen, shown, sizeof shown);
    return bad(e, 0, "socks5: username %s is not UTF-8", shown);
  }
  if (!socks5_utf8_valid(p + 3 + ulen, plen)) return bad(e, 0, "socks5: password is not UTF-8");
  *out = (socks5_userpass){
      .user = p + 2, .ulen = (uint8_t)ulen, .pass = p + 3 + ulen, .plen = (uint8_t)plen};
  *used = end;
  return SOCKS5_OK;
}

void socks5_format_ipv6(const uint8_t a[16], char *out) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!memcmp(a, mapped, 12)) {
    sprintf(out, "::ffff:%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
    return;
  }
  unsigned g[8];
  for (int i = 0; i < 8; i++) g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
  int best = -1, best_len = 1;  // RFC 5952: a single zero group is not shortened
  for (int i = 0; i < 8;) {
    if (g[i]) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && !g[j]) j++;
    if (j - i > best_len) best = i, best_len = j - i;
    i = j;
  }
  char *o = out;
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      o += sprintf(o, "::");
      i += best_len - 1;
      continue;
    }
    o += sprintf(o, "%s%x", i > 0 && i != best + best_len ? ":" : "", g[i]);
  }
  *o = 0;
}

int socks5_parse_request(const uint8_t *p, size_t n, size_t *used, socks5_request *out,
                         socks5_error *e) {
  if (n < 1) return SOCKS5_NEED;
  if (p[0] != 5)
    return bad(e, SOCKS5_REP_GENERAL, "socks5: unsupported version 0x%02x in request", p[0]);
  if (n < 2) return SOCKS5_NEED;
  if (p[1] < 1 || p[1] > 3)
    return bad(e, SOCKS5_REP_CMD_UNSUPPORTED, "socks5: unsupported command 0x%02x", p[1]);
  if (n < 3) return SOCKS5_NEED;
  if (p[2] != 0)
    return bad(e, SOCKS5_REP_GENERAL, "socks5: reserved byte is 0x%02x, not 0x00", p[2]);
  if (n < 4) return SOCKS5_NEED;
  size_t port_at;
  uint8_t atyp = p[3];
  if (atyp == 1) {
    port_at = 8;
    if (n < port_at + 2) return SOCKS5_NEED;
    memcpy(out->addr, p + 4, 4);
    *put_ipv4(out->host, p + 4) = 0;
  } else if (atyp == 4) {
    port_at = 20;
    if (n < port_at + 2) return SOCKS5_NEED;
    memcpy(out->addr, p + 4, 16);
    socks5_format_ipv6(p + 4, out->host);
  } else if (atyp == 3) {
    if (n < 5) return SOCKS5_NEED;
    size_t len = p[4];
    if (len == 0) return bad(e, SOCKS5_REP_GENERAL, "socks5: empty domain name in request");
    port_at = 5 + len;
    size_t seen = port_at < n ? port_at : n;
    for (size_t i = 5; i < seen; i++) {
      if (p[i] > 0x20 && p[i] < 0x7f) continue;
      char shown[200];
      show_bytes(p + 5, seen - 5, shown, sizeof shown);
      return bad(e, SOCKS5_REP_GENERAL, "socks5: bad byte 0x%02x in domain name %s in request",
                 p[i], shown);
    }
    if (n < port_at + 2) return SOCKS5_NEED;
    memcpy(out->host, p + 5, len);
    out->host[len] = 0;
  } else {
    return bad(e, SOCKS5_REP_ATYP_UNSUPPORTED, "socks5: unsupported address type 0x%02x in request",
               atyp);
  }
  out->cmd = p[1];
  out->atyp = atyp;
  out->port = (uint16_t)(p[port_at] << 8 | p[port_at + 1]);
  *used = port_at + 2;
  return SOCKS5_OK;
}

void socks5_format_dst(const socks5_request *r, char *out) {
  // formatHostPort: brackets whenever the host has a colon (a domain may, too)
  size_t n = strlen(r->host);
  bool colon = memchr(r->host, ':', n) != NULL;
  char *o = out;
  if (colon) *o++ = '[';
  memcpy(o, r->host, n);
  o += n;
  if (colon) *o++ = ']';
  *o++ = ':';
  *put_dec(o, r->port) = 0;
}

size_t socks5_encode_reply(uint8_t code, const struct sockaddr *bound, uint8_t out[22]) {
  out[0] = 5;
  out[1] = code;
  out[2] = 0;
  if (bound && bound->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)bound;
    out[3] = 4;
    memcpy(out + 4, &a->sin6_addr, 16);
    memcpy(out + 20, &a->sin6_port, 2);
    return 22;
  }
  out[3] = 1;
  memset(out + 4, 0, 6);
  if (bound && bound->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)bound;
    memcpy(out + 4, &a->sin_addr, 4);
    memcpy(out + 8, &a->sin_port, 2);
  }
  return 10;
}

// As socks5Reply (src/io/socks-server.ts) and socks5ReplyForErrno
// (src/core/socks.ts) for the reasons a native dial ends with.
uint8_t socks5_reply_for(const char *reason, int err) {
  if (!strcmp(reason, "loop") || !strcmp(reason, "rejected")) return SOCKS5_REP_NOT_ALLOWED;
  if (!strcmp(reason, "connect-timeout")) return 0x06;
  if (!strcmp(reason, "dns-error") || !strcmp(reason, "dns-timeout")) return 0x04;
  if (strcmp(reason, "connect-error")) return SOCKS5_REP_GENERAL;  // closed, shutdown
  switch (err) {
    case ECONNREFUSED:
      return 0x05;
    case ENETUNREACH:
    case ENETDOWN:
      return 0x03;
    case EHOSTUNREACH:
    case EHOSTDOWN:
      return 0x04;
    case ETIMEDOUT:
      return 0x06;
    default:
      return SOCKS5_REP_GENERAL;
  }
}
