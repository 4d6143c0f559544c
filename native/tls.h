// Mutual TLS 1.3 for mesh connections (HBONE), and a web PKI client mode
// (DNS over TLS), on mbedTLS 3.6. A tls_conn
// works on a non-blocking socket the owner gives it (mbedTLS BIO callbacks do
// send/recv on it); the owner waits in epoll for what tls_* asked for.
#ifndef UGATE_TLS_H
#define UGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TLS_ERR_MAX 200

// What tls_handshake / tls_read / tls_write return besides a byte count.
enum {
  TLS_WANT_READ = -1,  // call again once the socket is readable
  TLS_WANT_WRITE =
      -2,           // call again once the socket is writable (with the same bytes for tls_write)
  TLS_CLOSED = -3,  // the peer's close_notify or EOF
  TLS_FAILED = -4,  // fatal: tls_conn_error says why (alert sent where TLS allows)
};

// Who we are and whom we trust: loaded once, shared by every connection, reference counted
// (a reload makes a new one; live connections keep theirs).
typedef struct tls_config tls_config;

typedef struct {
  bool server;
  const char *chain_path;  // cert-chain.pem: leaf first, P-256 key
  const char *key_path;    // key.pem
  const char *roots_path;  // root-cert.pem: the trust anchors (never the peer's own chain)
  const char
      *trust_domain;  // peers' SPIFFE ids must be spiffe://<trust_domain>/...; NULL: any trusted
} tls_config_opts;

// NULL with a message in err naming the file (and the date, for a certificate
// that is expired or not yet valid).
tls_config *tls_config_new(const tls_config_opts *o, char err[TLS_ERR_MAX]);
void tls_config_ref(tls_config *c);
void tls_config_unref(tls_config *c);
// The leaf's SPIFFE id (URI SAN) and node id (base32 SHA-256 of the public key, 52 chars).
const char *tls_config_spiffe_id(const tls_config *c);
const char *tls_config_node_id(const tls_config *c);
bool tls_config_is_server(const tls_config *c);

// Web PKI client mode, beside the mesh mode above (DNS over TLS to public
// resolvers): TLS 1.3 only, no client certificate, no ALPN; the server's chain
// is verified against a CA bundle (PEM, like the system's
// ca-certificates.crt; certificates this mbedTLS cannot parse are skipped)
// and its name checked per connection (tls_conn_new_web). NULL with a message
// in err naming the file.
tls_config *tls_config_new_web(const char *ca_path, char err[TLS_ERR_MAX]);
bool tls_config_is_web(const tls_config *c);
int tls_config_web_roots(const tls_config *c);  // certificates taken from the bundle

typedef struct tls_conn tls_conn;

// TLS 1.3 only, ALPN "h2", client certificate required (server) / sent (client),
// no SNI from the client. expect_peer: a client's exact SPIFFE id the peer
// must present, "spiffe://TD" for any id of trust domain TD (in place of the
// config's), or NULL for "any id of the config's trust domain".
tls_conn *tls_conn_new(tls_config *c, int fd, const char *expect_peer);
// The same for a reverse tunnel (docs/mesh.md): ALPN TLS_ALPN_REVERSE offered
// (client) or accepted (server) before "h2". Which one was agreed: tls_alpn.
#define TLS_ALPN_REVERSE "ugate-rev"
tls_conn *tls_conn_new_reverse(tls_config *c, int fd, const char *expect_peer);
// A connection of a web config: host is a DNS name (sent as SNI, matched
// against the certificate's DNS names) or an IP literal (matched against its
// IP address SANs; no SNI). NULL when c is not a web config or out of memory.
tls_conn *tls_conn_new_web(tls_config *c, int fd, const char *host);
void tls_conn_free(tls_conn *t);  // does not close fd
int tls_handshake(tls_conn *t);   // 0 done, TLS_WANT_*, TLS_FAILED
// >0 plaintext bytes, TLS_WANT_*, TLS_CLOSED, TLS_FAILED.
ssize_t tls_read(tls_conn *t, uint8_t *buf, size_t cap);
// Bytes taken (>0), TLS_WANT_* (repeat with the same bytes), TLS_FAILED.
ssize_t tls_write(tls_conn *t, const uint8_t *p, size_t n);
// Bytes buffered inside (decrypted, or received and not yet decrypted): read
// again before waiting for the socket.
size_t tls_pending(const tls_conn *t);
// After the handshake, for bulk transfer: the socket is read up to 64 KiB at a
// time, and written records are kept (up to four full ones) until the buffer
// is full or tls_flush. An owner that batches calls tls_flush once it has
// written what it had (and after reads, which may answer the peer), and
// again on EPOLLOUT while it returns TLS_WANT_WRITE. The buffers exist only
// while bytes move (an idle connection holds none; out of memory: unbatched).
// 0, or TLS_FAILED (before the handshake: nothing changed).
int tls_batch(tls_conn *t);
size_t tls_batch_held(const tls_conn *t);  // bytes of batch buffers allocated now
// How long after the wake before a small wake must come for it to free them
// (1000 ms; tests: 0).
void tls_batch_quiet_ms(unsigned ms);
// Send the records tls_batch kept: 0 when all are sent, TLS_WANT_WRITE, TLS_FAILED.
int tls_flush(tls_conn *t);
int tls_close_notify(tls_conn *t);                  // 0 sent, TLS_WANT_WRITE, TLS_FAILED
const char *tls_conn_error(const tls_conn *t);      // "" or why it failed
const char *tls_alpn(const tls_conn *t);            // the agreed protocol; "" before the handshake
const char *tls_peer_spiffe_id(const tls_conn *t);  // after the handshake; "" when none
const char *tls_peer_node_id(const tls_conn *t);
// The agreed suite's IANA name (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
// TLS_CHACHA20_POLY1305_SHA256); "" before the handshake.
const char *tls_suite(const tls_conn *t);

// Whether this build runs AES and GCM's multiply as CPU instructions on this
// CPU (AES-NI + PCLMULQDQ, ARMv8 AES + PMULL): aesgcm_fast (native/aesgcm.h). Decides the suites'
// order: AES-128-GCM first when it does, ChaCha20-Poly1305 first when not. A server takes its own
// order, except that a client offering ChaCha20-Poly1305 first gets it (docs/mesh.md).
bool tls_aes_in_hardware(void);

// Which of suites (0-terminated: ours, in order) a server takes for the
// ClientHello whose first n bytes are p (tls.c says how); -1: none. Not
// static only for test/unit/tls-pick.test.ts's fuzz.
int tls_server_pick(const uint8_t *p, size_t n, const int *suites);

// The JS side (mod_tls.c): native.tlsConfig({...}) returns an opaque object
// holding one reference. Another module's binding gets the tls_config* from
// it with this (borrowed: tls_config_ref it to keep it past the object's
// life), or NULL with a TypeError thrown when v is not such an object.
// ug_tls_web_config_from_js is the same for native.tlsWebConfig's objects:
// each takes only its own mode.
#ifdef QUICKJS_H
tls_config *ug_tls_config_from_js(JSContext *ctx, JSValueConst v);
tls_config *ug_tls_web_config_from_js(JSContext *ctx, JSValueConst v);
#endif

#endif
