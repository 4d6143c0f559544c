// Mutual TLS 1.3 for the mesh on mbedTLS 3.6: configs loaded from Istio's
// identity files, connections on non-blocking sockets; and the web PKI client
// mode (a CA bundle, a host name) for DNS over TLS. See tls.h.
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aesgcm.h"
#include "identity.h"
#include "mbedtls/error.h"
#include "mbedtls/psa_util.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"

// Identity files are a few KB; anything far bigger is not one.
#define MAX_PEM (256 * 1024)
// A system CA bundle is ~220 KB (Debian, OpenWrt's ca-bundle) and grows slowly.
#define MAX_BUNDLE (4 * 1024 * 1024)
#define SPIFFE_MAX 2048  // SPIFFE ID standard 2.3: the longest id a peer must accept
#define N_SUITES 3

enum { ALPN_H2, ALPN_REV };  // the configs' ALPN lists: alpn, alpn_rev

struct tls_config {
  int refs;  // atomic: connections are freed on the relay thread
  bool server;
  const int *suites;  // ours, fastest first on this CPU (0-terminated)
  // [ALPN_H2 or ALPN_REV (ugate-rev before h2: reverse tunnels)][0]: every
  // suite in our order (a client's offer; a server's when server_setup
  // cannot read the ClientHello). A server's [..][1 + k]: suites[k] alone,
  // for the connections server_setup gave it to. A web config: conf[0][0].
  mbedtls_ssl_config conf[2][1 + N_SUITES];
  mbedtls_x509_crt chain, roots;
  mbedtls_pk_context key;
  char *trust_domain;  // NULL: any trusted peer
  char *spiffe_id;
  char node_id[UG_ID_NODE_ID_LEN + 1];
  bool web;       // web PKI client (tls_config_new_web): roots from a CA bundle, no own cert
  int web_roots;  // certificates taken from the bundle
  char *ca_path;  // the bundle, named in errors
};

struct tls_conn {
  tls_config *cfg;
  int fd;
  bool ready;      // mbedtls_ssl_setup done (a server's waits for the ClientHello)
  bool done;       // handshake finished
  bool reverse;    // ALPN ugate-rev offered (client) or accepted (server) before h2
  bool got_data;   // application data was read
  int sock_errno;  // the send/recv error that failed it
  char *expect_peer;
  mbedtls_ssl_context ssl;
  char err[TLS_ERR_MAX];
  char id_err[TLS_ERR_MAX];  // verify_peer's reason, when the chain itself was fine
  char peer_spiffe[SPIFFE_MAX + 1];
  char peer_node[UG_ID_NODE_ID_LEN + 1];
  uint8_t ip[16];  // web mode, host an IP literal: the address its certificate must name
  size_t ip_len;   // 4, 16, or 0 for a DNS name (checked by mbedTLS)
  // tls_batch: raw bytes received but not yet taken by mbedTLS, and whole
  // records written but not yet sent. Allocated when bytes must be held, and
  // NULL again once drained after a quiet wake (batch_idle).
  bool batch;
  uint8_t *in, *out;
  size_t in_off, in_len, out_off, out_len;
  size_t in_moved, out_moved;  // since the last wait for input / the last whole flush
  int64_t in_last, out_last;   // when that wake ended (ms, CLOCK_MONOTONIC_COARSE)
};

// tls_batch's buffers. mbedTLS asks its BIO for a record's 5-byte header and
// then for its body, and hands each record to the socket alone: 2 recv per
// record in, 1 send per 16 KiB out. On a veth or LAN the kernel's cost per
// call and per packet is most of a tunnel end's CPU (docs/performance.md).
// They are held only while bytes move: a wake that moved less than a full
// record and came a second or more after the one before (an idle tunnel's
// PING and its ACK) ends with them freed, so many mostly idle tunnels (a
// gate's reverse tunnels) hold none. One under load keeps them between
// wakes: freeing after each small wake of a bulk transfer (a wake often
// finds only part of a record) halved a tunnel's throughput in
// bench/hbone.sh (the sender's CPU per GB 1.25 → 2.81 s: a malloc and free
// of 64 KiB per wake).
#define BATCH_IN (64 * 1024)
#define BATCH_OUT (4 * (16384 + 5 + 256))  // four full records and their overhead
#define BATCH_KEEP 16384
static unsigned batch_quiet_ms = 1000;

// ---- loading ---------------------------------------------------------------------

static char *read_text(const char *path, size_t max, const char *what, char err[TLS_ERR_MAX]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, TLS_ERR_MAX, "%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(max + 1);
  size_t n = 0;
  ssize_t r = 0;
  while (buf && n < max && ((r = read(fd, buf + n, max - n)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0) n += (size_t)r;
  int e = errno;
  close(fd);
  if (!buf || r < 0) {
    snprintf(err, TLS_ERR_MAX, "%s: cannot read: %s", path, strerror(buf ? e : ENOMEM));
    free(buf);
    return NULL;
  }
  if (n == max) {
    snprintf(err, TLS_ERR_MAX, "%s: larger than %zu KB, not %s", path, max / 1024, what);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

static char *read_pem(const char *path, char err[TLS_ERR_MAX]) {
  return read_text(path, MAX_PEM, "an identity file", err);
}

// PEM certificates only (mbedtls_x509_crt_parse would also take DER).
static int load_certs(mbedtls_x509_crt *crt, const char *path, char err[TLS_ERR_MAX]) {
  char *pem = read_pem(path, err);
  if (!pem) return -1;
  int ret = -1;
  if (!strstr(pem, "-----BEGIN CERTIFICATE-----"))
    snprintf(err, TLS_ERR_MAX, "%s: no PEM certificate in it", path);
  else if ((ret = mbedtls_x509_crt_parse(crt, (const unsigned char *)pem, strlen(pem) + 1)) != 0)
    snprintf(err, TLS_ERR_MAX, "%s: not a valid PEM certificate (mbedTLS error -0x%04x)", path,
             (unsigned)-ret);
  free(pem);
  return ret ? -1 : 0;
}

static int load_key(mbedtls_pk_context *pk, const char *path, char err[TLS_ERR_MAX]) {
  char *pem = read_pem(path, err);
  if (!pem) return -1;
  int ret = mbedtls_pk_parse_key(pk, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0,
                                 mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
  // The key's text is secret: no copy left behind in the heap.
  mbedtls_platform_zeroize(pem, strlen(pem));
  free(pem);
  if (ret)
    snprintf(err, TLS_ERR_MAX, "%s: not a valid PEM private key (mbedTLS error -0x%04x)", path,
             (unsigned)-ret);
  return ret ? -1 : 0;
}

static void now_text(char out[UG_ID_TIME_LEN]) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, UG_ID_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// Every certificate of a file must be valid now: the message names the file
// and the date (as `ugate identity show` words it).
static int check_dates(const mbedtls_x509_crt *crt, const char *path, char err[TLS_ERR_MAX]) {
  for (const mbedtls_x509_crt *c = crt; c && c->raw.p; c = c->next) {
    char when[UG_ID_TIME_LEN], now[UG_ID_TIME_LEN];
    now_text(now);
    if (mbedtls_x509_time_is_future(&c->valid_from)) {
      ug_id_time_text(when, &c->valid_from);
      snprintf(err, TLS_ERR_MAX, "%s: certificate is not valid before %s (now %s)", path, when,
               now);
      return -1;
    }
    if (mbedtls_x509_time_is_past(&c->valid_to)) {
      ug_id_time_text(when, &c->valid_to);
      snprintf(err, TLS_ERR_MAX, "%s: certificate expired on %s (now %s)", path, when, now);
      return -1;
    }
  }
  return 0;
}

// The trust domain of spiffe://TD/ns/NS/sa/SA (into td), or -1 when uri is
// not an Istio workload id.
static int spiffe_trust_domain(const char *uri, size_t len, const char **td, size_t *td_len) {
  static const char scheme[] = "spiffe://";
  if (len > SPIFFE_MAX || len < sizeof scheme || memcmp(uri, scheme, sizeof scheme - 1)) return -1;
  const char *p = uri + sizeof scheme - 1, *end = uri + len;
  const char *slash = memchr(p, '/', (size_t)(end - p));
  if (!slash || slash == p) return -1;
  *td = p;
  *td_len = (size_t)(slash - p);
  // /ns/NS/sa/SA: four segments, none empty.
  const char *seg[4];
  size_t seg_len[4];
  const char *q = slash;
  for (int i = 0; i < 4; i++) {
    if (q >= end || *q != '/') return -1;
    seg[i] = ++q;
    while (q < end && *q != '/') q++;
    seg_len[i] = (size_t)(q - seg[i]);
    if (!seg_len[i]) return -1;
  }
  if (q != end) return -1;
  if (seg_len[0] != 2 || memcmp(seg[0], "ns", 2) || seg_len[2] != 2 || memcmp(seg[2], "sa", 2))
    return -1;
  return 0;
}

// The leaf's first URI SAN that is a SPIFFE workload id, or NULL.
static const mbedtls_x509_buf *leaf_spiffe(const mbedtls_x509_crt *leaf) {
  for (const mbedtls_x509_sequence *s = &leaf->subject_alt_names; s && s->buf.p; s = s->next) {
    if (s->buf.tag !=
        (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER))
      continue;
    const char *td;
    size_t td_len;
    if (!spiffe_trust_domain((const char *)s->buf.p, s->buf.len, &td, &td_len)) return &s->buf;
  }
  return NULL;
}

static bool in_trust_domain(const mbedtls_x509_buf *id, const char *trust_domain) {
  const char *td;
  size_t td_len;
  if (spiffe_trust_domain((const char *)id->p, id->len, &td, &td_len)) return false;
  return strlen(trust_domain) == td_len && !memcmp(td, trust_domain, td_len);
}

// An expected peer "spiffe://TD" (the trust domain's own SPIFFE id: no path)
// stands for any workload id of TD: its TD, else NULL (an exact id).
static const char *expected_trust_domain(const char *expect) {
  static const char scheme[] = "spiffe://";
  if (strncmp(expect, scheme, sizeof scheme - 1)) return NULL;
  const char *td = expect + sizeof scheme - 1;
  return *td && !strchr(td, '/') ? td : NULL;
}

// TLS 1.3 suites, fastest first: AES-128-GCM (10 rounds to AES-256's 14)
// where AES and GCM's multiply are CPU instructions, else ChaCha20-Poly1305,
// about twice as fast as portable AES-GCM (docs/performance.md). ztunnel
// offers and accepts the two AES-GCM suites only (mesh-notes).
static const int suites_aes[N_SUITES + 1] = {MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
                                             MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
                                             MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, 0};
static const int suites_chacha[N_SUITES + 1] = {MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
                                                MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
                                                MBEDTLS_TLS1_3_AES_256_GCM_SHA384, 0};
// Each suite alone (a server's per-suite configs), with its IANA name.
static const struct {
  int list[2];
  const char *name;
} suite_alone[N_SUITES] = {
    {{MBEDTLS_TLS1_3_AES_128_GCM_SHA256, 0}, "TLS_AES_128_GCM_SHA256"},
    {{MBEDTLS_TLS1_3_AES_256_GCM_SHA384, 0}, "TLS_AES_256_GCM_SHA384"},
    {{MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, 0}, "TLS_CHACHA20_POLY1305_SHA256"},
};

static int suite_index(int id) {
  for (int k = 0; k < N_SUITES; k++)
    if (suite_alone[k].list[0] == id) return k;
  return -1;
}

// native/aesgcm.c's bulk path: AES and carry-less multiply instructions
// (x86-64: AES-NI, PCLMULQDQ; aarch64: AES, PMULL), asked of the CPU once.
bool tls_aes_in_hardware(void) {
  return aesgcm_fast();
}

static const uint16_t groups[] = {MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
                                  MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
                                  MBEDTLS_SSL_IANA_TLS_GROUP_NONE};
// Handshake signatures: P-256 leaves, RSA leaves (PSS in TLS 1.3); PKCS#1
// v1.5 for RSA-signed certificates of a mesh CA.
static const uint16_t sig_algs[] = {
    MBEDTLS_TLS1_3_SIG_ECDSA_SECP256R1_SHA256, MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA256,
    MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA384,    MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
    MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA384,       MBEDTLS_TLS1_3_SIG_NONE};
static const char *alpn[] = {"h2", NULL};
// Reverse tunnels: mbedTLS's server picks the first of its own list the client
// offers, so ugate-rev wins when both ends want it and h2 is left for others.
static const char *alpn_rev[] = {TLS_ALPN_REVERSE, "h2", NULL};

// TLS 1.3 only, the peer's certificate required and checked against c's roots (both modes).
static int conf_tls13(tls_config *c, mbedtls_ssl_config *conf, const int *suites,
                      const uint16_t *grps, const uint16_t *algs) {
  int ret =
      mbedtls_ssl_config_defaults(conf, c->server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                  MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret) return ret;
  mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_ciphersuites(conf, suites);
  mbedtls_ssl_conf_groups(conf, grps);
  mbedtls_ssl_conf_sig_algs(conf, algs);
  mbedtls_ssl_conf_rng(conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
  mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(conf, &c->roots, NULL);
  return 0;
}

static int setup_conf(tls_config *c, mbedtls_ssl_config *conf, const int *suites,
                      const char **protos) {
  // Both ends prove who they are; the configured roots are the only anchors.
  int ret = conf_tls13(c, conf, suites, groups, sig_algs);
  if (ret) return ret;
  // A mesh server (h2 and ugate-rev alike) checks the client's certificate
  // itself once the handshake is done (tls_handshake): mbedTLS 3.6 sends an
  // alert about it still under the handshake keys, which the client, past its
  // Finished, cannot decrypt. (The web mode is a client only.)
  if (c->server) mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
  if ((ret = mbedtls_ssl_conf_own_cert(conf, &c->chain, &c->key))) return ret;
  return mbedtls_ssl_conf_alpn_protocols(conf, protos);
}

static void config_free(tls_config *c) {
  for (int a = 0; a < 2; a++)
    for (int k = 0; k <= N_SUITES; k++) mbedtls_ssl_config_free(&c->conf[a][k]);
  mbedtls_x509_crt_free(&c->chain);
  mbedtls_x509_crt_free(&c->roots);
  mbedtls_pk_free(&c->key);
  free(c->trust_domain);
  free(c->spiffe_id);
  free(c->ca_path);
  free(c);
}

// c when the mbedTLS set-up returned 0; else NULL with its error in err, c freed.
static tls_config *setup_done(tls_config *c, int ret, char err[TLS_ERR_MAX]) {
  if (!ret) return c;
  snprintf(err, TLS_ERR_MAX, "TLS setup failed (mbedTLS error -0x%04x)", (unsigned)-ret);
  config_free(c);
  return NULL;
}

// One reference, every mbedTLS part initialised (config_free takes it from
// here); NULL with err set.
static tls_config *config_alloc(char err[TLS_ERR_MAX]) {
  err[0] = 0;
  if (ug_crypto_init()) {
    snprintf(err, TLS_ERR_MAX, "PSA crypto failed to start");
    return NULL;
  }
  tls_config *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, TLS_ERR_MAX, "out of memory");
    return NULL;
  }
  c->refs = 1;
  c->suites = tls_aes_in_hardware() ? suites_aes : suites_chacha;
  for (int a = 0; a < 2; a++)
    for (int k = 0; k <= N_SUITES; k++) mbedtls_ssl_config_init(&c->conf[a][k]);
  mbedtls_x509_crt_init(&c->chain);
  mbedtls_x509_crt_init(&c->roots);
  mbedtls_pk_init(&c->key);
  return c;
}

tls_config *tls_config_new(const tls_config_opts *o, char err[TLS_ERR_MAX]) {
  tls_config *c = config_alloc(err);
  if (!c) return NULL;
  c->server = o->server;
  if (load_certs(&c->chain, o->chain_path, err) || check_dates(&c->chain, o->chain_path, err) ||
      load_certs(&c->roots, o->roots_path, err) || check_dates(&c->roots, o->roots_path, err) ||
      load_key(&c->key, o->key_path, err))
    goto fail;
  uint8_t pub[65];
  size_t pub_len = ug_id_public_key(&c->chain.pk, pub);
  if (!pub_len) {
    snprintf(err, TLS_ERR_MAX, "%s: the certificate's key is not P-256", o->chain_path);
    goto fail;
  }
  if (mbedtls_pk_check_pair(&c->chain.pk, &c->key, mbedtls_psa_get_random,
                            MBEDTLS_PSA_RANDOM_STATE)) {
    snprintf(err, TLS_ERR_MAX, "%s: is not the private key of %s", o->key_path, o->chain_path);
    goto fail;
  }
  // Our own chain must be one the peers can verify against the same roots.
  uint32_t flags = 0;
  if (mbedtls_x509_crt_verify(&c->chain, &c->roots, NULL, NULL, &flags, NULL, NULL)) {
    char why[UG_ID_ERR_MAX];
    ug_id_verify_text(flags, why);
    snprintf(err, TLS_ERR_MAX, "%s: does not verify against %s: %s", o->chain_path, o->roots_path,
             why);
    goto fail;
  }
  const mbedtls_x509_buf *id = leaf_spiffe(&c->chain);
  if (!id) {
    snprintf(err, TLS_ERR_MAX,
             "%s: no SPIFFE id (spiffe://TD/ns/NS/sa/SA) in the certificate's URI SANs",
             o->chain_path);
    goto fail;
  }
  c->spiffe_id = strndup((const char *)id->p, id->len);
  c->trust_domain = o->trust_domain && *o->trust_domain ? strdup(o->trust_domain) : NULL;
  if (!c->spiffe_id || (o->trust_domain && *o->trust_domain && !c->trust_domain)) {
    snprintf(err, TLS_ERR_MAX, "out of memory");
    goto fail;
  }
  if (c->trust_domain && !in_trust_domain(id, c->trust_domain)) {
    snprintf(err, TLS_ERR_MAX, "%s: %s is not in trust domain %s", o->chain_path, c->spiffe_id,
             c->trust_domain);
    goto fail;
  }
  ug_id_node_id(pub, pub_len, c->node_id);
  int ret = 0;
  for (int a = ALPN_H2; a <= ALPN_REV && !ret; a++)
    for (int k = 0; k <= (c->server ? N_SUITES : 0) && !ret; k++)
      ret = setup_conf(c, &c->conf[a][k],
                       k ? suite_alone[suite_index(c->suites[k - 1])].list : c->suites,
                       a == ALPN_REV ? alpn_rev : alpn);
  return setup_done(c, ret, err);
fail:
  config_free(c);
  return NULL;
}

void tls_config_ref(tls_config *c) {
  __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void tls_config_unref(tls_config *c) {
  if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) config_free(c);
}

const char *tls_config_spiffe_id(const tls_config *c) {
  return c->spiffe_id ? c->spiffe_id : "";
}

const char *tls_config_node_id(const tls_config *c) {
  return c->node_id;
}

bool tls_config_is_server(const tls_config *c) {
  return c->server;
}

// ---- web PKI client mode -------------------------------------------------------------

// What public servers present: P-256, P-384 or RSA leaves; RSA PKCS#1 v1.5
// and ECDSA-SHA384 for the certificates of their CAs.
static const uint16_t web_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_NONE};
static const uint16_t web_sig_algs[] = {MBEDTLS_TLS1_3_SIG_ECDSA_SECP256R1_SHA256,
                                        MBEDTLS_TLS1_3_SIG_ECDSA_SECP384R1_SHA384,
                                        MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA256,
                                        MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA384,
                                        MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
                                        MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA384,
                                        MBEDTLS_TLS1_3_SIG_NONE};

// Every certificate of the bundle mbedTLS can parse; one at least.
static int load_bundle(tls_config *c, const char *path, char err[TLS_ERR_MAX]) {
  char *pem = read_text(path, MAX_BUNDLE, "a CA bundle", err);
  if (!pem) return -1;
  int ret = -1;
  if (!strstr(pem, "-----BEGIN CERTIFICATE-----"))
    snprintf(err, TLS_ERR_MAX, "%s: no PEM certificate in it", path);
  else
    ret = mbedtls_x509_crt_parse(&c->roots, (const unsigned char *)pem, strlen(pem) + 1);
  free(pem);
  // ret > 0: that many could not be parsed (algorithms left out of our mbedTLS): skipped.
  for (const mbedtls_x509_crt *r = &c->roots; ret >= 0 && r && r->raw.p; r = r->next)
    c->web_roots++;
  if (ret < 0 && !err[0])
    snprintf(err, TLS_ERR_MAX, "%s: no valid PEM certificate in it (mbedTLS error -0x%04x)", path,
             (unsigned)-ret);
  return c->web_roots ? 0 : -1;
}

tls_config *tls_config_new_web(const char *ca_path, char err[TLS_ERR_MAX]) {
  tls_config *c = config_alloc(err);
  if (!c) return NULL;
  c->web = true;
  if (load_bundle(c, ca_path, err)) goto fail;
  if (!(c->ca_path = strdup(ca_path))) {
    snprintf(err, TLS_ERR_MAX, "out of memory");
    goto fail;
  }
  // A client only: the server's chain against the bundle, no certificate of ours.
  return setup_done(c, conf_tls13(c, &c->conf[0][0], c->suites, web_groups, web_sig_algs), err);
fail:
  config_free(c);
  return NULL;
}

bool tls_config_is_web(const tls_config *c) {
  return c->web;
}

int tls_config_web_roots(const tls_config *c) {
  return c->web_roots;
}

// ---- connections -------------------------------------------------------------------

// A batch buffer just drained at the end of a wake: freed unless the wake
// moved a record's worth or more (bulk, which would allocate it again soon).
static void batch_idle(uint8_t **buf, size_t *moved, int64_t *last) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // vDSO: no system call
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (*moved < BATCH_KEEP && now - *last >= (int64_t)batch_quiet_ms) {
    free(*buf);
    *buf = NULL;
  }
  *moved = 0;
  *last = now;
}

void tls_batch_quiet_ms(unsigned ms) {
  batch_quiet_ms = ms;
}

// Send the batched records: 0 when all went, MBEDTLS_ERR_SSL_WANT_WRITE, or an error.
static int out_drain(tls_conn *t) {
  while (t->out_off < t->out_len) {
    ssize_t n = send(t->fd, t->out + t->out_off, t->out_len - t->out_off, MSG_NOSIGNAL);
    if (n >= 0) {
      t->out_off += (size_t)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_WANT_WRITE;
    t->sock_errno = errno;
    return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
  }
  t->out_off = t->out_len = 0;
  return 0;
}

static int bio_send(void *arg, const unsigned char *buf, size_t len) {
  tls_conn *t = arg;
  if (t->batch && !t->out) t->out = malloc(BATCH_OUT);  // none: each record its own send
  if (t->out) {  // batched: taken now, sent when full or at tls_flush
    if (t->out_len + len > BATCH_OUT) {
      int r = out_drain(t);
      if (r && r != MBEDTLS_ERR_SSL_WANT_WRITE) return r;
      if (t->out_off > 0) {  // a partial send: keep what is left at the front
        memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
        t->out_len -= t->out_off;
        t->out_off = 0;
      }
      if (t->out_len + len > BATCH_OUT) return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    memcpy(t->out + t->out_len, buf, len);
    t->out_len += len;
    t->out_moved += len;
    return (int)len;
  }
  for (;;) {
    ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return (int)n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_WANT_WRITE;
    t->sock_errno = errno;
    return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
  }
}

static int bio_recv(void *arg, unsigned char *buf, size_t len) {
  tls_conn *t = arg;
  if (t->batch && !t->in) t->in = malloc(BATCH_IN);  // none: read as mbedTLS asks
  if (t->in) {  // batched: as much as the socket has, handed out as mbedTLS asks
    while (t->in_off == t->in_len) {
      ssize_t n = recv(t->fd, t->in, BATCH_IN, 0);
      if (n == 0) return 0;
      if (n > 0) {
        t->in_off = 0;
        t->in_len = (size_t)n;
        t->in_moved += (size_t)n;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        batch_idle(&t->in, &t->in_moved, &t->in_last);  // drained: the wake ends here
        t->in_off = t->in_len = 0;
        return MBEDTLS_ERR_SSL_WANT_READ;
      }
      t->sock_errno = errno;
      return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    size_t k = t->in_len - t->in_off < len ? t->in_len - t->in_off : len;
    memcpy(buf, t->in + t->in_off, k);
    t->in_off += k;
    return (int)k;
  }
  for (;;) {
    ssize_t n = recv(t->fd, buf, len, 0);
    if (n >= 0) return (int)n;  // 0: EOF
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return MBEDTLS_ERR_SSL_WANT_READ;
    t->sock_errno = errno;
    return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
  }
}

// Called for each certificate of the peer's chain, root first, after mbedTLS
// checked it against the configured roots: the leaf's SPIFFE id decides.
static int verify_peer(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
  tls_conn *t = arg;
  if (depth != 0) return 0;
  uint8_t pub[65];
  size_t pub_len = ug_id_public_key(&crt->pk, pub);
  if (pub_len) ug_id_node_id(pub, pub_len, t->peer_node);
  const mbedtls_x509_buf *id = leaf_spiffe(crt);
  if (!id) {
    snprintf(t->id_err, TLS_ERR_MAX, "peer certificate has no SPIFFE id");
    *flags |= MBEDTLS_X509_BADCERT_OTHER;
    return 0;
  }
  memcpy(t->peer_spiffe, id->p, id->len);
  t->peer_spiffe[id->len] = 0;
  const char *want_td = t->expect_peer ? expected_trust_domain(t->expect_peer) : NULL;
  if (want_td) {
    if (!in_trust_domain(id, want_td)) {
      snprintf(t->id_err, TLS_ERR_MAX, "peer %.100s is not in trust domain %.60s", t->peer_spiffe,
               want_td);
      *flags |= MBEDTLS_X509_BADCERT_OTHER;
    }
  } else if (t->expect_peer) {
    if (strcmp(t->peer_spiffe, t->expect_peer)) {
      snprintf(t->id_err, TLS_ERR_MAX, "peer is %.80s, not the expected %.80s", t->peer_spiffe,
               t->expect_peer);
      *flags |= MBEDTLS_X509_BADCERT_OTHER;
    }
  } else if (t->cfg->trust_domain && !in_trust_domain(id, t->cfg->trust_domain)) {
    snprintf(t->id_err, TLS_ERR_MAX, "peer %.100s is not in trust domain %.60s", t->peer_spiffe,
             t->cfg->trust_domain);
    *flags |= MBEDTLS_X509_BADCERT_OTHER;
  }
  return 0;
}

// mbedTLS's side of a mesh connection, on conf.
static int ssl_setup(tls_conn *t, const mbedtls_ssl_config *conf) {
  int ret = mbedtls_ssl_setup(&t->ssl, conf);
  // No SNI: a mesh peer is named by its SPIFFE id, checked in verify_peer
  // (an explicit NULL, or 3.6 refuses a client without a host name).
  if (!ret && !t->cfg->server) ret = mbedtls_ssl_set_hostname(&t->ssl, NULL);
  if (ret) return ret;
  mbedtls_ssl_set_verify(&t->ssl, verify_peer, t);
  mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
  t->ready = true;
  return 0;
}

static tls_conn *conn_new(tls_config *c, int fd, const char *expect_peer, bool reverse) {
  tls_conn *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->fd = fd;
  t->cfg = c;
  t->reverse = reverse;
  tls_config_ref(c);
  mbedtls_ssl_init(&t->ssl);
  if (expect_peer && *expect_peer && !(t->expect_peer = strdup(expect_peer))) goto fail;
  // A server's waits for the ClientHello (server_setup).
  if (!c->server && ssl_setup(t, &c->conf[reverse ? ALPN_REV : ALPN_H2][0])) goto fail;
  return t;
fail:
  tls_conn_free(t);
  return NULL;
}

// Which of suites (ours, in order) a server takes for a ClientHello whose
// first n bytes are p: ChaCha20-Poly1305 when it is the first of ours in the
// client's list (a client that puts it first has no AES instructions, as
// OpenSSL's "prioritize ChaCha" reads it), else the first of ours the
// client offers. -1: no list of suites whole in p, or none in common.
int tls_server_pick(const uint8_t *p, size_t n, const int *suites) {
  // Record header (type 22, version, length), handshake header (type 1,
  // length), legacy_version, random, then the session id (length first).
  size_t at = 5 + 4 + 2 + 32;
  if (n < at + 1 || p[0] != 22 || p[5] != 1) return -1;
  at += 1 + p[at];
  if (n < at + 2) return -1;
  size_t len = (size_t)p[at] << 8 | p[at + 1], rec_end = 5 + ((size_t)p[3] << 8 | p[4]);
  at += 2;
  if (len % 2 || at + len > n || at + len > rec_end) return -1;
  int first = -1, best = -1;
  for (size_t i = 0; i < len; i += 2) {
    int id = p[at + i] << 8 | p[at + i + 1];
    for (int k = 0; suites[k]; k++)
      if (suites[k] == id) {
        if (first < 0) first = k;
        if (best < 0 || k < best) best = k;
      }
  }
  return first >= 0 && suites[first] == MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256 ? first : best;
}

// mbedTLS 3.6's TLS 1.3 server takes the first suite of the client's list
// that it has: the client's preference, not ours. So a server's connection
// is set up at its first handshake step, once the ClientHello can be peeked
// at, on the config that holds only the suite tls_server_pick chose.
static int server_setup(tls_conn *t) {
  uint8_t hello[512];
  ssize_t n;
  while ((n = recv(t->fd, hello, sizeof hello, MSG_PEEK)) < 0 && errno == EINTR) {
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return TLS_WANT_READ;
  // EOF, an error, or a ClientHello that came in pieces: every suite in our
  // order (the client's preference then), and mbedTLS reads what came.
  int k = n > 0 ? tls_server_pick(hello, (size_t)n, t->cfg->suites) : -1;
  int ret = ssl_setup(t, &t->cfg->conf[t->reverse ? ALPN_REV : ALPN_H2][k + 1]);
  if (!ret) return 0;
  snprintf(t->err, TLS_ERR_MAX, "TLS setup failed (mbedTLS error -0x%04x)", (unsigned)-ret);
  return TLS_FAILED;
}

tls_conn *tls_conn_new(tls_config *c, int fd, const char *expect_peer) {
  return conn_new(c, fd, expect_peer, false);
}

tls_conn *tls_conn_new_reverse(tls_config *c, int fd, const char *expect_peer) {
  return conn_new(c, fd, expect_peer, true);
}

// Web mode, host an IP literal: mbedTLS checks only DNS names (with SNI), so
// the leaf's IP address SANs are matched here.
static int verify_web(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
  tls_conn *t = arg;
  if (depth != 0 || !t->ip_len) return 0;
  const unsigned char tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS;
  for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next)
    if (s->buf.tag == tag && s->buf.len == t->ip_len && !memcmp(s->buf.p, t->ip, t->ip_len))
      return 0;
  snprintf(t->id_err, TLS_ERR_MAX, "peer certificate is not for %.80s (no such IP address SAN)",
           t->expect_peer);
  *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
  return 0;
}

tls_conn *tls_conn_new_web(tls_config *c, int fd, const char *host) {
  if (!c->web || !host || !*host) return NULL;
  tls_conn *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->fd = fd;
  t->cfg = c;
  tls_config_ref(c);
  mbedtls_ssl_init(&t->ssl);
  if (!(t->expect_peer = strdup(host)) || mbedtls_ssl_setup(&t->ssl, &c->conf[0][0])) goto fail;
  if (inet_pton(AF_INET, host, t->ip) == 1)
    t->ip_len = 4;
  else if (inet_pton(AF_INET6, host, t->ip) == 1)
    t->ip_len = 16;
  // An address is no server name (RFC 6066 3): no SNI, verify_web checks it.
  if (mbedtls_ssl_set_hostname(&t->ssl, t->ip_len ? NULL : host)) goto fail;
  mbedtls_ssl_set_verify(&t->ssl, verify_web, t);
  mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
  t->ready = true;
  return t;
fail:
  tls_conn_free(t);
  return NULL;
}

void tls_conn_free(tls_conn *t) {
  if (!t) return;
  mbedtls_ssl_free(&t->ssl);
  tls_config_unref(t->cfg);
  free(t->expect_peer);
  free(t->in);
  free(t->out);
  free(t);
}

static const char *alert_name(unsigned a) {
  switch (a) {
    case 10:
      return "unexpected_message";
    case 20:
      return "bad_record_mac";
    case 40:
      return "handshake_failure";
    case 42:
      return "bad_certificate";
    case 43:
      return "unsupported_certificate";
    case 44:
      return "certificate_revoked";
    case 45:
      return "certificate_expired";
    case 46:
      return "certificate_unknown";
    case 47:
      return "illegal_parameter";
    case 48:
      return "unknown_ca";
    case 50:
      return "decode_error";
    case 51:
      return "decrypt_error";
    case 70:
      return "protocol_version";
    case 71:
      return "insufficient_security";
    case 80:
      return "internal_error";
    case 109:
      return "missing_extension";
    case 110:
      return "unsupported_extension";
    case 116:
      return "certificate_required";
    case 120:
      return "no_application_protocol";
    default:
      return "alert";
  }
}

// Why the peer's certificate (verification flags v) was refused, into t->err.
static void refused_cert(tls_conn *t, uint32_t v) {
  if (v & MBEDTLS_X509_BADCERT_EXPIRED)
    snprintf(t->err, TLS_ERR_MAX, "peer certificate expired");
  else if (v & MBEDTLS_X509_BADCERT_FUTURE)
    snprintf(t->err, TLS_ERR_MAX, "peer certificate not yet valid");
  else if ((v & MBEDTLS_X509_BADCERT_NOT_TRUSTED) && t->cfg->web)
    snprintf(t->err, TLS_ERR_MAX, "peer certificate not signed by a CA of %.150s", t->cfg->ca_path);
  else if (v & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    snprintf(t->err, TLS_ERR_MAX, "peer certificate not signed by the configured roots");
  else if ((v & MBEDTLS_X509_BADCERT_CN_MISMATCH) && !t->id_err[0])
    snprintf(t->err, TLS_ERR_MAX, "peer certificate is not for %.150s", t->expect_peer);
  else if (t->id_err[0])
    memcpy(t->err, t->id_err, sizeof t->err);
  else {
    char why[UG_ID_ERR_MAX];
    ug_id_verify_text(v, why);
    snprintf(t->err, TLS_ERR_MAX, "peer certificate refused: %s", why);
  }
}

// The alert for a refused client certificate: RFC 8446's for a missing one,
// else the one mbedTLS would pick for the flags.
static unsigned char cert_alert(bool missing, uint32_t v) {
  if (missing) return MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED;
  if (v & MBEDTLS_X509_BADCERT_OTHER) return MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED;
  if (v & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
           MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY))
    return MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT;
  if (v & MBEDTLS_X509_BADCERT_EXPIRED) return MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
  if (v & MBEDTLS_X509_BADCERT_NOT_TRUSTED) return MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA;
  return MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN;
}

// TLS_FAILED, with why in t->err (the first reason stays).
static int failed(tls_conn *t, int ret) {
  if (t->err[0]) return TLS_FAILED;
  uint32_t v = mbedtls_ssl_get_verify_result(&t->ssl);
  // A mesh client done with its handshake that has read nothing since: a server
  // that refused its certificate ends it that way (a web client sends none).
  bool unanswered = t->done && !t->got_data && !t->cfg->server && !t->cfg->web;
  bool peer_closed = t->sock_errno == EPIPE || t->sock_errno == ECONNRESET;
  switch (ret) {
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
      snprintf(t->err, TLS_ERR_MAX, "peer does not speak TLS 1.3");
      break;
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
      snprintf(t->err, TLS_ERR_MAX, "peer sent no client certificate");
      break;
    case MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL:
      snprintf(t->err, TLS_ERR_MAX, "peer does not offer ALPN h2");
      break;
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
      snprintf(t->err, TLS_ERR_MAX, "no TLS 1.3 cipher suite, group or signature in common");
      break;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
      refused_cert(t, v);
      break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
      // The alert that ended it is still in the record buffer.
      unsigned a = t->ssl.MBEDTLS_PRIVATE(in_msg) ? t->ssl.MBEDTLS_PRIVATE(in_msg)[1] : 0;
      snprintf(t->err, TLS_ERR_MAX, "peer sent alert %u (%s)", a, alert_name(a));
      break;
    }
    case MBEDTLS_ERR_SSL_CONN_EOF:
      snprintf(t->err, TLS_ERR_MAX, "peer closed the connection during the handshake");
      break;
    case MBEDTLS_ERR_SSL_INVALID_MAC:
      // TLS 1.3: a server that refuses our certificate while it still writes
      // with the handshake keys (mbedTLS 3.6 does; ugate not: tls_handshake)
      // sends its alert under keys we no longer read with.
      if (unanswered) {
        snprintf(t->err, TLS_ERR_MAX,
                 "peer ended the connection after the handshake (an unreadable alert: it "
                 "probably refused our certificate)");
        break;
      }
      __attribute__((fallthrough));
    default:
      // A peer that refuses our certificate may close before we read its alert:
      // during our handshake, or (TLS 1.3: a client is done first) after it, where
      // our first read or write finds the socket closed.
      if (!t->done && peer_closed)
        snprintf(t->err, TLS_ERR_MAX, "peer closed the connection during the handshake (%s)",
                 strerror(t->sock_errno));
      else if (unanswered && peer_closed)
        snprintf(t->err, TLS_ERR_MAX,
                 "peer ended the connection after the handshake (%s: it probably refused our "
                 "certificate)",
                 strerror(t->sock_errno));
      else if (t->sock_errno)
        snprintf(t->err, TLS_ERR_MAX, "socket error: %s", strerror(t->sock_errno));
      else
        snprintf(t->err, TLS_ERR_MAX, "TLS failed (mbedTLS error -0x%04x)", (unsigned)-ret);
  }
  return TLS_FAILED;
}

static int want(int ret) {
  if (ret == MBEDTLS_ERR_SSL_WANT_READ) return TLS_WANT_READ;
  if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) return TLS_WANT_WRITE;
  return 0;
}

int tls_handshake(tls_conn *t) {
  if (t->done) return 0;
  if (!t->ready) {
    int r = server_setup(t);
    if (r) return r;
  }
  int ret = mbedtls_ssl_handshake(&t->ssl);
  if (want(ret)) return want(ret);
  if (ret) return failed(t, ret);
  if (t->cfg->web) {  // no ALPN in web PKI mode, and no client certificate to check
    t->done = true;
    return 0;
  }
  // A mesh server, either ALPN list: the client's certificate (see
  // setup_conf); the alert now goes under the application keys, which the
  // client reads with.
  if (t->cfg->server) {
    uint32_t v = mbedtls_ssl_get_verify_result(&t->ssl);
    bool missing = !mbedtls_ssl_get_peer_cert(&t->ssl);
    if (missing || v) {
      mbedtls_ssl_send_alert_message(&t->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                     cert_alert(missing, v));
      if (missing)
        snprintf(t->err, TLS_ERR_MAX, "peer sent no client certificate");
      else
        refused_cert(t, v);
      return TLS_FAILED;
    }
  }
  // A peer that offered no ALPN at all is not refused by mbedTLS itself.
  const char *proto = mbedtls_ssl_get_alpn_protocol(&t->ssl);
  if (!proto || (strcmp(proto, "h2") && !(t->reverse && !strcmp(proto, TLS_ALPN_REVERSE)))) {
    mbedtls_ssl_send_alert_message(&t->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                   MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL);
    snprintf(t->err, TLS_ERR_MAX, "peer did not negotiate ALPN h2");
    return TLS_FAILED;
  }
  t->done = true;
  return 0;
}

ssize_t tls_read(tls_conn *t, uint8_t *buf, size_t cap) {
  int ret = mbedtls_ssl_read(&t->ssl, buf, cap);
  if (ret > 0) t->got_data = true;
  if (ret > 0) return ret;
  if (want(ret)) return want(ret);
  if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF)
    return TLS_CLOSED;
  return failed(t, ret);
}

ssize_t tls_write(tls_conn *t, const uint8_t *p, size_t n) {
  int ret = mbedtls_ssl_write(&t->ssl, p, n);
  if (ret > 0) return ret;
  if (want(ret)) return want(ret);
  return failed(t, ret);
}

size_t tls_pending(const tls_conn *t) {
  return mbedtls_ssl_get_bytes_avail(&t->ssl) + (t->in_len - t->in_off);
}

int tls_batch(tls_conn *t) {
  if (!t->done) return TLS_FAILED;
  t->batch = true;
  return 0;
}

size_t tls_batch_held(const tls_conn *t) {
  return (t->in ? BATCH_IN : 0) + (t->out ? BATCH_OUT : 0);
}

int tls_flush(tls_conn *t) {
  if (!t->out) return 0;
  int r = out_drain(t);
  if (!r) return batch_idle(&t->out, &t->out_moved, &t->out_last), 0;
  return r == MBEDTLS_ERR_SSL_WANT_WRITE ? TLS_WANT_WRITE : failed(t, r);
}

int tls_close_notify(tls_conn *t) {
  int ret = mbedtls_ssl_close_notify(&t->ssl);
  if (!ret && t->batch) return tls_flush(t);
  if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) return TLS_WANT_WRITE;
  return ret ? failed(t, ret) : 0;
}

const char *tls_alpn(const tls_conn *t) {
  const char *proto = t->done ? mbedtls_ssl_get_alpn_protocol(&t->ssl) : NULL;
  return proto ? proto : "";
}

const char *tls_suite(const tls_conn *t) {
  int k = t->done ? suite_index(mbedtls_ssl_get_ciphersuite_id_from_ssl(&t->ssl)) : -1;
  return k < 0 ? "" : suite_alone[k].name;
}

const char *tls_conn_error(const tls_conn *t) {
  return t->err;
}

const char *tls_peer_spiffe_id(const tls_conn *t) {
  return t->done ? t->peer_spiffe : "";
}

const char *tls_peer_node_id(const tls_conn *t) {
  return t->done ? t->peer_node : "";
}
