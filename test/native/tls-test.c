// Drives native/tls.c for test/e2e/tls.ts: one mTLS connection as client or
// server on 127.0.0.1, against openssl s_server / s_client.
//
//   tls-test client|server --port P --chain F --key F --roots F
//            [--td TD] [--expect SPIFFE] [--send TEXT] [--close-after-line]
//   tls-test pair --chain F --key F --roots F
//
// pair: a client and a server of that identity over a socket pair, batched
// (tls_batch), send small, bulk (64 KiB), small again client → server; per
// step one line "STEP sent N held C/F read M held S": the client's batch
// buffers before and after tls_flush, the plaintext the server read until
// the pair ran dry and its buffers then (bytes, tls_batch_held).
//
// Prints, one line each: "listening PORT" (server, port 0 = any), "config
// failed: MSG" (exit 3), "handshake ok peer=ID node=NODEID" or "handshake
// failed: MSG" (exit 2), "suite NAME" (the agreed one), "aes in hardware:
// yes|no" (which order our suites are in), "received: TEXT" per line read,
// "close_notify sent", "peer closed" (TLS_CLOSED), "read failed: MSG"
// (exit 4). Everything is freed before exit, so ASan's leak check covers
// tls.c.
#define _GNU_SOURCE  // accept4
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mbedtls/psa_util.h"
#include "psa/crypto.h"

// A peer that stalls is a failed test, not a hung one.
#define WAIT_MS 10000

static int wait_for(int fd, int r) {
  struct pollfd p = {fd, r == TLS_WANT_WRITE ? POLLOUT : POLLIN, 0};
  int n = poll(&p, 1, WAIT_MS);
  if (n <= 0) fprintf(stderr, "tls-test: peer silent for %d ms\n", WAIT_MS);
  return n > 0 ? 0 : -1;
}

static int connect_or_accept(bool server, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (!server) {
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1) ||
      getsockname(fd, (struct sockaddr *)&a, &len)) {
    close(fd);
    return -1;
  }
  printf("listening %d\n", ntohs(a.sin_port));
  fflush(stdout);
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  close(fd);
  return c;
}

// The server reads until the pair is dry: the plaintext bytes, or -1.
static long drain(tls_conn *s) {
  static uint8_t buf[16384];
  long got = 0;
  ssize_t n;
  while ((n = tls_read(s, buf, sizeof buf)) > 0) got += n;
  return n == TLS_WANT_READ ? got : -1;
}

static int pair(const tls_config_opts *o) {
  tls_batch_quiet_ms(0);  // every small step frees: no waiting out the quiet second
  char err[TLS_ERR_MAX];
  tls_config_opts so = *o, co = *o;
  so.server = true;
  co.server = false;
  tls_config *scfg = tls_config_new(&so, err), *ccfg = scfg ? tls_config_new(&co, err) : NULL;
  int sv[2] = {-1, -1}, rc = 1;
  tls_conn *s = NULL, *c = NULL;
  if (!ccfg || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
    printf("pair failed: %s\n", ccfg ? strerror(errno) : err);
    goto out;
  }
  s = tls_conn_new(scfg, sv[0], NULL);
  c = tls_conn_new(ccfg, sv[1], NULL);
  int rs = TLS_WANT_READ, rcl = TLS_WANT_READ;
  // One process plays both ends: each step moves the other on; a handful suffice.
  for (int i = 0; i < 50 && (rs || rcl) && rs != TLS_FAILED && rcl != TLS_FAILED; i++) {
    if (rcl) rcl = tls_handshake(c);
    if (rs) rs = tls_handshake(s);
  }
  if (rs || rcl || tls_batch(s) || tls_batch(c)) {
    printf("handshake failed: %s%s\n", tls_conn_error(c), tls_conn_error(s));
    goto out;
  }
  printf("handshake held %zu/%zu\n", tls_batch_held(c), tls_batch_held(s));
  static uint8_t data[65536];
  memset(data, 'x', sizeof data);
  const struct {
    const char *name;
    size_t n;
  } steps[] = {{"small", 5}, {"bulk", sizeof data}, {"small", 5}};
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    size_t off = 0;
    ssize_t w = 0;
    while (off < steps[k].n && (w = tls_write(c, data + off, steps[k].n - off)) > 0)
      off += (size_t)w;
    size_t before = tls_batch_held(c);
    if (w < 0 || tls_flush(c)) {
      printf("%s write failed: %s\n", steps[k].name, tls_conn_error(c));
      goto out;
    }
    printf("%s sent %zu held %zu/%zu", steps[k].name, off, before, tls_batch_held(c));
    long got = drain(s);
    printf(" read %ld held %zu\n", got, tls_batch_held(s));
  }
  rc = 0;
out:
  tls_conn_free(c);
  tls_conn_free(s);
  tls_config_unref(ccfg);
  tls_config_unref(scfg);
  if (sv[0] >= 0) close(sv[0]), close(sv[1]);
  mbedtls_psa_crypto_free();
  return rc;
}

int main(int argc, char **argv) {
  tls_config_opts o = {0};
  const char *expect = NULL, *send_text = NULL;
  int port = 0;
  bool close_after_line = false;
  if (argc < 2 ||
      (strcmp(argv[1], "client") && strcmp(argv[1], "server") && strcmp(argv[1], "pair"))) {
    fprintf(stderr,
            "usage: tls-test client|server|pair --port P --chain F --key F --roots F ...\n");
    return 1;
  }
  o.server = !strcmp(argv[1], "server");
  for (int i = 2; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--close-after-line")) {
      close_after_line = true;
      continue;
    }
    if (!v) return fprintf(stderr, "tls-test: %s needs a value\n", argv[i]), 1;
    if (!strcmp(argv[i], "--port"))
      port = atoi(v);
    else if (!strcmp(argv[i], "--chain"))
      o.chain_path = v;
    else if (!strcmp(argv[i], "--key"))
      o.key_path = v;
    else if (!strcmp(argv[i], "--roots"))
      o.roots_path = v;
    else if (!strcmp(argv[i], "--td"))
      o.trust_domain = v;
    else if (!strcmp(argv[i], "--expect"))
      expect = v;
    else if (!strcmp(argv[i], "--send"))
      send_text = v;
    else
      return fprintf(stderr, "tls-test: unknown option %s\n", argv[i]), 1;
    i++;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(argv[1], "pair")) return pair(&o);
  char err[TLS_ERR_MAX];
  tls_config *cfg = tls_config_new(&o, err);
  if (!cfg) {
    printf("config failed: %s\n", err);
    mbedtls_psa_crypto_free();
    return 3;
  }
  printf("config ok id=%s node=%s\n", tls_config_spiffe_id(cfg), tls_config_node_id(cfg));
  int fd = connect_or_accept(o.server, port);
  if (fd < 0) {
    perror("tls-test: socket");
    tls_config_unref(cfg);
    return 1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  tls_conn *t = tls_conn_new(cfg, fd, expect);
  // The connection holds its own reference: a reload could drop ours now.
  tls_config_unref(cfg);
  int rc = 0, r;
  while ((r = tls_handshake(t)) == TLS_WANT_READ || r == TLS_WANT_WRITE)
    if (wait_for(fd, r)) break;
  if (r != 0) {
    printf("handshake failed: %s\n", r == TLS_FAILED ? tls_conn_error(t) : "timeout");
    rc = 2;
    goto out;
  }
  printf("handshake ok peer=%s node=%s\n", tls_peer_spiffe_id(t), tls_peer_node_id(t));
  printf("suite %s\n", tls_suite(t));
  printf("aes in hardware: %s\n", tls_aes_in_hardware() ? "yes" : "no");
  if (send_text) {
    char line[4096];
    size_t n = (size_t)snprintf(line, sizeof line, "%s\n", send_text), off = 0;
    while (off < n) {
      ssize_t w = tls_write(t, (const uint8_t *)line + off, n - off);
      if (w > 0)
        off += (size_t)w;
      else if (w == TLS_FAILED || wait_for(fd, (int)w)) {
        printf("write failed: %s\n", tls_conn_error(t));
        rc = 4;
        goto out;
      }
    }
  }
  char got[4096];
  size_t have = 0;
  bool closing = false;
  for (;;) {
    ssize_t n = tls_read(t, (uint8_t *)got + have, sizeof got - 1 - have);
    if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
      if (wait_for(fd, (int)n)) {
        rc = 4;
        break;
      }
      continue;
    }
    if (n == TLS_CLOSED) {
      printf("peer closed\n");
      break;
    }
    if (n < 0) {
      printf("read failed: %s\n", tls_conn_error(t));
      rc = 4;
      break;
    }
    have += (size_t)n;
    char *nl;
    while ((nl = memchr(got, '\n', have))) {
      *nl = 0;
      printf("received: %s\n", got);
      have -= (size_t)(nl + 1 - got);
      memmove(got, nl + 1, have);
      if (close_after_line && !closing) {
        while ((r = tls_close_notify(t)) == TLS_WANT_WRITE)
          if (wait_for(fd, r)) break;
        printf(r == 0 ? "close_notify sent\n" : "close_notify failed\n");
        closing = true;
      }
    }
  }
  // The peer closed first (server role): answer with ours.
  if (!closing && rc == 0) {
    while ((r = tls_close_notify(t)) == TLS_WANT_WRITE)
      if (wait_for(fd, r)) break;
    printf(r == 0 ? "close_notify sent\n" : "close_notify failed\n");
  }
out:
  tls_conn_free(t);
  close(fd);
  mbedtls_psa_crypto_free();
  return rc;
}
