// Mutual TLS 1.3 for the mesh on mbedTLS 3.6: configs loaded from Istio's
// identity files, connections on non-blocking sockets. See tls.h.
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "identity.h"
#include "mbedtls/error.h"
#include "mbedtls/psa_util.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"

// Identity files are a few KB; anything far bigger is not one.
#define MAX_PEM (256 * 1024)
#define SPIFFE_MAX 2048  // SPIFFE ID standard 2.3: the longest id a peer must accept

struct tls_config {
  int refs;  // atomic: connections are freed on the relay thread
  bool server;
  mbedtls_ssl_config conf;
  mbedtls_x509_crt chain, roots;
  mbedtls_pk_context key;
  char *trust_domain;  // NULL: any trusted peer
  char *spiffe_id;
  char node_id[UG_ID_NODE_ID_LEN + 1];
};

struct tls_conn {
  tls_config *cfg;
  int fd;
  bool done;       // handshake finished
  int sock_errno;  // the send/recv error that failed it
  char *expect_peer;
  mbedtls_ssl_context ssl;
  char err[TLS_ERR_MAX];
  char id_err[TLS_ERR_MAX];  // verify_peer's reason, when the chain itself was fine
  char peer_spiffe[SPIFFE_MAX + 1];
  char peer_node[UG_ID_NODE_ID_LEN + 1];
};

// ---- loading ---------------------------------------------------------------------

static char *read_pem(const char *path, char err[TLS_ERR_MAX]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, TLS_ERR_MAX, "%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_PEM + 1);
  size_t n = 0;
  ssize_t r = 0;
  while (buf && n < MAX_PEM &&
         ((r = read(fd, buf + n, MAX_PEM - n)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0) n += (size_t)r;
  int e = errno;
  close(fd);
  if (!buf || r < 0) {
    snprintf(err, TLS_ERR_MAX, "%s: cannot read: %s", path, strerror(buf ? e : ENOMEM));
    free(buf);
    return NULL;
  }
  if (n == MAX_PEM) {
    snprintf(err, TLS_ERR_MAX, "%s: larger than %d KB, not an identity file", path, MAX_PEM / 1024);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
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

// What a mesh peer speaks (mesh-notes: ztunnel's TLS).
static const int ciphersuites[] = {MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
                                   MBEDTLS_TLS1_3_AES_128_GCM_SHA256, 0};
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

static int setup_conf(tls_config *c) {
  mbedtls_ssl_config *conf = &c->conf;
  int ret =
      mbedtls_ssl_config_defaults(conf, c->server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                  MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret) return ret;
  mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_ciphersuites(conf, ciphersuites);
  mbedtls_ssl_conf_groups(conf, groups);
  mbedtls_ssl_conf_sig_algs(conf, sig_algs);
  mbedtls_ssl_conf_rng(conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
  // Both ends prove who they are; the configured roots are the only anchors.
  // The server checks the client's certificate itself once the handshake is
  // done (tls_handshake): mbedTLS 3.6 sends an alert about it still under the
  // handshake keys, which the client, past its Finished, cannot decrypt.
  mbedtls_ssl_conf_authmode(conf,
                            c->server ? MBEDTLS_SSL_VERIFY_OPTIONAL : MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(conf, &c->roots, NULL);
  if ((ret = mbedtls_ssl_conf_own_cert(conf, &c->chain, &c->key))) return ret;
  return mbedtls_ssl_conf_alpn_protocols(conf, alpn);
}

static void config_free(tls_config *c) {
  mbedtls_ssl_config_free(&c->conf);
  mbedtls_x509_crt_free(&c->chain);
  mbedtls_x509_crt_free(&c->roots);
  mbedtls_pk_free(&c->key);
  free(c->trust_domain);
  free(c->spiffe_id);
  free(c);
}

tls_config *tls_config_new(const tls_config_opts *o, char err[TLS_ERR_MAX]) {
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
  c->server = o->server;
  mbedtls_ssl_config_init(&c->conf);
  mbedtls_x509_crt_init(&c->chain);
  mbedtls_x509_crt_init(&c->roots);
  mbedtls_pk_init(&c->key);
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
  int ret = setup_conf(c);
  if (ret) {
    snprintf(err, TLS_ERR_MAX, "TLS setup failed (mbedTLS error -0x%04x)", (unsigned)-ret);
    goto fail;
  }
  return c;
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
  return c->spiffe_id;
}

const char *tls_config_node_id(const tls_config *c) {
  return c->node_id;
}

bool tls_config_is_server(const tls_config *c) {
  return c->server;
}

// ---- connections -------------------------------------------------------------------

static int bio_send(void *arg, const unsigned char *buf, size_t len) {
  tls_conn *t = arg;
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
  if (t->expect_peer) {
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

tls_conn *tls_conn_new(tls_config *c, int fd, const char *expect_peer) {
  tls_conn *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->fd = fd;
  t->cfg = c;
  tls_config_ref(c);
  mbedtls_ssl_init(&t->ssl);
  if (expect_peer && *expect_peer && !(t->expect_peer = strdup(expect_peer))) goto fail;
  if (mbedtls_ssl_setup(&t->ssl, &c->conf)) goto fail;
  // No SNI: a mesh peer is named by its SPIFFE id, checked in verify_peer
  // (an explicit NULL, or 3.6 refuses a client without a host name).
  if (!c->server && mbedtls_ssl_set_hostname(&t->ssl, NULL)) goto fail;
  mbedtls_ssl_set_verify(&t->ssl, verify_peer, t);
  mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
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
  else if (v & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
    snprintf(t->err, TLS_ERR_MAX, "peer certificate not signed by the configured roots");
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
    default:
      // A peer that refuses our certificate may close before we read its alert.
      if (!t->done && (t->sock_errno == EPIPE || t->sock_errno == ECONNRESET))
        snprintf(t->err, TLS_ERR_MAX, "peer closed the connection during the handshake (%s)",
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
  int ret = mbedtls_ssl_handshake(&t->ssl);
  if (want(ret)) return want(ret);
  if (ret) return failed(t, ret);
  // Server: the client's certificate (see setup_conf); the alert now goes
  // under the application keys, which the client reads with.
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
  if (!proto || strcmp(proto, "h2")) {
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
  return mbedtls_ssl_get_bytes_avail(&t->ssl);
}

int tls_close_notify(tls_conn *t) {
  int ret = mbedtls_ssl_close_notify(&t->ssl);
  if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) return TLS_WANT_WRITE;
  return ret ? failed(t, ret) : 0;
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
