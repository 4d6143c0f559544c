// Node identities with mbedTLS: make a CA and a node certificate, read a
// chain back and verify it against trust anchors. See identity.h.
#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/ecp.h"
#include "mbedtls/entropy.h"
#include "mbedtls/error.h"
#include "mbedtls/oid.h"
#include "mbedtls/pem.h"
#include "mbedtls/pk.h"
#include "mbedtls/sha256.h"
#include "mbedtls/x509_crt.h"
#include "psa/crypto.h"

int ug_crypto_init(void) {
  // Idempotent and, with MBEDTLS_THREADING_C, safe from any thread.
  return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
}

// A DRBG seeded from getrandom(2); one per call: identities are made rarely.
typedef struct {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
} rng;

static int rng_init(rng *r) {
  mbedtls_entropy_init(&r->entropy);
  mbedtls_ctr_drbg_init(&r->drbg);
  // Keys and signatures go through PSA (MBEDTLS_USE_PSA_CRYPTO).
  if (ug_crypto_init()) return MBEDTLS_ERR_ERROR_GENERIC_ERROR;
  static const unsigned char pers[] = "ugate identity";
  return mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers, sizeof pers - 1);
}

static void rng_free(rng *r) {
  mbedtls_ctr_drbg_free(&r->drbg);
  mbedtls_entropy_free(&r->entropy);
}

static int fail(char err[UG_ID_ERR_MAX], const char *what, int ret) {
  snprintf(err, UG_ID_ERR_MAX, "%s failed (mbedTLS error -0x%04x)", what, (unsigned)-ret);
  return -1;
}

static int gen_key(mbedtls_pk_context *pk, rng *r) {
  int ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (ret) return ret;
  return mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), mbedtls_ctr_drbg_random,
                             &r->drbg);
}

static char *pem_dup(const unsigned char *buf) {
  return strdup((const char *)buf);
}

// One certificate: subject's key signed by issuer's. ca: a CA certificate
// (keyCertSign) rather than a node's (digitalSignature, server + client auth).
static int write_cert(mbedtls_pk_context *subject_key, const char *subject,
                      mbedtls_pk_context *issuer_key, const char *issuer, const char *not_before,
                      const char *not_after, int ca, const char *uri, rng *r, char **pem) {
  mbedtls_x509write_cert w;
  mbedtls_x509write_crt_init(&w);
  unsigned char serial[16], buf[4096];
  int ret = mbedtls_ctr_drbg_random(&r->drbg, serial, sizeof serial);
  serial[0] &= 0x7f;  // a positive INTEGER
  serial[0] |= 0x40;  // of full length
  mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&w, subject_key);
  mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
  if (!ret) ret = mbedtls_x509write_crt_set_serial_raw(&w, serial, sizeof serial);
  if (!ret) ret = mbedtls_x509write_crt_set_validity(&w, not_before, not_after);
  if (!ret) ret = mbedtls_x509write_crt_set_subject_name(&w, subject);
  if (!ret) ret = mbedtls_x509write_crt_set_issuer_name(&w, issuer);
  if (!ret) ret = mbedtls_x509write_crt_set_basic_constraints(&w, ca, ca ? 0 : -1);
  if (!ret)
    ret = mbedtls_x509write_crt_set_key_usage(
        &w, ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
               : MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT);
  if (!ret && uri) {
    mbedtls_x509_san_list san = {.node.type = MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER};
    san.node.san.unstructured_name.p = (unsigned char *)uri;
    san.node.san.unstructured_name.len = strlen(uri);
    ret = mbedtls_x509write_crt_set_subject_alternative_name(&w, &san);
  }
  if (!ret && !ca) {
    // serverAuth, clientAuth: a node is both ends of a tunnel.
    mbedtls_asn1_sequence eku[2] = {0};
    eku[0].buf.tag = eku[1].buf.tag = MBEDTLS_ASN1_OID;
    eku[0].buf.p = (unsigned char *)MBEDTLS_OID_SERVER_AUTH;
    eku[0].buf.len = MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH);
    eku[1].buf.p = (unsigned char *)MBEDTLS_OID_CLIENT_AUTH;
    eku[1].buf.len = MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
    eku[0].next = &eku[1];
    ret = mbedtls_x509write_crt_set_ext_key_usage(&w, eku);
  }
  if (!ret) ret = mbedtls_x509write_crt_pem(&w, buf, sizeof buf, mbedtls_ctr_drbg_random, &r->drbg);
  mbedtls_x509write_crt_free(&w);
  if (ret) return ret;
  return (*pem = pem_dup(buf)) ? 0 : MBEDTLS_ERR_X509_ALLOC_FAILED;
}

static int key_pem(mbedtls_pk_context *pk, char **pem) {
  unsigned char buf[1024];
  int ret = mbedtls_pk_write_key_pem(pk, buf, sizeof buf);
  if (ret) return ret;
  return (*pem = pem_dup(buf)) ? 0 : MBEDTLS_ERR_PK_ALLOC_FAILED;
}

int ug_id_create(const ug_id_params *p, ug_id_pems *out, char err[UG_ID_ERR_MAX]) {
  memset(out, 0, sizeof *out);
  rng r;
  mbedtls_pk_context ca, node;
  mbedtls_pk_init(&ca);
  mbedtls_pk_init(&node);
  const char *step = "seeding the random generator";
  int ret = rng_init(&r);
  if (!ret) step = "making the CA key", ret = gen_key(&ca, &r);
  if (!ret) step = "making the node key", ret = gen_key(&node, &r);
  if (!ret)
    step = "writing the CA certificate",
    ret = write_cert(&ca, p->ca_subject, &ca, p->ca_subject, p->ca_not_before, p->ca_not_after, 1,
                     NULL, &r, &out->root_cert);
  if (!ret)
    step = "writing the node certificate",
    ret = write_cert(&node, p->node_subject, &ca, p->ca_subject, p->node_not_before,
                     p->node_not_after, 0, p->uri, &r, &out->cert_chain);
  if (!ret) step = "writing the keys", ret = key_pem(&ca, &out->ca_key);
  if (!ret) ret = key_pem(&node, &out->key);
  mbedtls_pk_free(&ca);
  mbedtls_pk_free(&node);
  rng_free(&r);
  if (!ret) return 0;
  ug_id_pems_free(out);
  return fail(err, step, ret);
}

void ug_id_pems_free(ug_id_pems *p) {
  free(p->root_cert);
  free(p->ca_key);
  free(p->cert_chain);
  free(p->key);
  memset(p, 0, sizeof *p);
}

// ---- reading -------------------------------------------------------------------

void ug_id_time_text(char out[UG_ID_TIME_LEN], const mbedtls_x509_time *t) {
  snprintf(out, UG_ID_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year % 10000, t->mon % 100,
           t->day % 100, t->hour % 100, t->min % 100, t->sec % 100);
}

static int read_cert(const mbedtls_x509_crt *c, ug_id_cert *o) {
  memset(o, 0, sizeof *o);
  if (mbedtls_x509_dn_gets(o->subject, sizeof o->subject, &c->subject) < 0) o->subject[0] = 0;
  if (mbedtls_x509_dn_gets(o->issuer, sizeof o->issuer, &c->issuer) < 0) o->issuer[0] = 0;
  ug_id_time_text(o->not_before, &c->valid_from);
  ug_id_time_text(o->not_after, &c->valid_to);
  for (const mbedtls_x509_sequence *s = &c->subject_alt_names; s && s->buf.p; s = s->next) {
    if (s->buf.tag !=
        (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER))
      continue;
    if (o->uri_count == UG_ID_MAX_URIS) break;
    char *u = malloc(s->buf.len + 1);
    if (!u) return -1;
    memcpy(u, s->buf.p, s->buf.len);
    u[s->buf.len] = 0;
    o->uris[o->uri_count++] = u;
  }
  o->public_key_len = ug_id_public_key(&c->pk, o->public_key);
  return 0;
}

size_t ug_id_public_key(const mbedtls_pk_context *pk, uint8_t out[65]) {
  if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY) return 0;
  const mbedtls_ecp_keypair *kp = mbedtls_pk_ec(*pk);
  size_t len = 0;
  if (mbedtls_ecp_keypair_get_group_id(kp) != MBEDTLS_ECP_DP_SECP256R1 ||
      mbedtls_ecp_write_public_key(kp, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, out, 65) || len != 65)
    return 0;
  return len;
}

int ug_id_node_id(const uint8_t *public_key, size_t len, char out[UG_ID_NODE_ID_LEN + 1]) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  uint8_t digest[32];
  out[0] = 0;
  if (len != 65 || public_key[0] != 4 || mbedtls_sha256(public_key, len, digest, 0)) return -1;
  // RFC 4648 base32 without padding: 256 bits = 51 groups of 5 and 1 bit.
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (size_t i = 0; i < sizeof digest; i++) {
    acc = (acc << 8) | digest[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[n++] = alphabet[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out[n++] = alphabet[(acc << (5 - bits)) & 31];
  out[n] = 0;
  return 0;
}

void ug_id_verify_text(uint32_t flags, char out[UG_ID_ERR_MAX]) {
  static const struct {
    uint32_t flag;
    const char *name;
  } names[] = {
      {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "not-trusted"},
      {MBEDTLS_X509_BADCERT_REVOKED, "revoked"},
      {MBEDTLS_X509_BADCERT_KEY_USAGE, "key-usage"},
      {MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "extended-key-usage"},
      {MBEDTLS_X509_BADCERT_BAD_MD, "bad-hash-algorithm"},
      {MBEDTLS_X509_BADCERT_BAD_PK, "bad-key-algorithm"},
      {MBEDTLS_X509_BADCERT_BAD_KEY, "bad-key"},
      {MBEDTLS_X509_BADCERT_OTHER, "other"},
  };
  out[0] = 0;
  size_t n = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!(flags & names[i].flag)) continue;
    n += (size_t)snprintf(out + n, UG_ID_ERR_MAX - n, "%s%s", n ? ", " : "", names[i].name);
    if (n >= UG_ID_ERR_MAX) return;
  }
  if (!n && flags) snprintf(out, UG_ID_ERR_MAX, "flags 0x%x", (unsigned)flags);
}

static ug_id_status bad(ug_id_status s, char err[UG_ID_ERR_MAX], const char *what, int ret) {
  if (ret == MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT ||
      ret == MBEDTLS_ERR_PEM_NO_HEADER_FOOTER_PRESENT)
    snprintf(err, UG_ID_ERR_MAX, "no PEM %s in it", what);
  else
    snprintf(err, UG_ID_ERR_MAX, "not a valid PEM %s (mbedTLS error -0x%04x)", what,
             (unsigned)-ret);
  return s;
}

// mbedtls_x509_crt_parse also takes DER: the text must look like PEM.
static int has_pem(const char *text, const char *label) {
  char begin[64];
  snprintf(begin, sizeof begin, "-----BEGIN %s-----", label);
  return strstr(text, begin) != NULL;
}

// Time flags are the caller's to report (with the file and the date).
#define TIME_FLAGS                                                                            \
  (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE | MBEDTLS_X509_BADCRL_EXPIRED | \
   MBEDTLS_X509_BADCRL_FUTURE)

ug_id_status ug_id_inspect(const char *chain_pem, const char *root_pem, const char *key_pem,
                           ug_id_report *out, char err[UG_ID_ERR_MAX]) {
  memset(out, 0, sizeof *out);
  if (ug_crypto_init()) {
    snprintf(err, UG_ID_ERR_MAX, "PSA crypto failed to start");
    return UG_ID_BAD_CHAIN;
  }
  mbedtls_x509_crt chain, roots;
  mbedtls_pk_context key;
  mbedtls_x509_crt_init(&chain);
  mbedtls_x509_crt_init(&roots);
  mbedtls_pk_init(&key);
  ug_id_status st = UG_ID_OK;
  int ret;
  // Each parse wants the NUL inside the length for PEM.
  if (!has_pem(chain_pem, "CERTIFICATE"))
    st = bad(UG_ID_BAD_CHAIN, err, "certificate", MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT);
  else if ((ret = mbedtls_x509_crt_parse(&chain, (const unsigned char *)chain_pem,
                                         strlen(chain_pem) + 1)) != 0)
    st = bad(UG_ID_BAD_CHAIN, err, "certificate", ret);
  else if (!has_pem(root_pem, "CERTIFICATE"))
    st = bad(UG_ID_BAD_ROOT, err, "certificate", MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT);
  else if ((ret = mbedtls_x509_crt_parse(&roots, (const unsigned char *)root_pem,
                                         strlen(root_pem) + 1)) != 0)
    st = bad(UG_ID_BAD_ROOT, err, "certificate", ret);
  else if (key_pem && (ret = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem,
                                                  strlen(key_pem) + 1, NULL, 0, NULL, NULL)) != 0)
    st = bad(UG_ID_BAD_KEY, err, "private key", ret);
  if (st == UG_ID_OK) {
    int n = 0;
    for (const mbedtls_x509_crt *c = &chain; c; c = c->next) n++;
    out->certs = calloc((size_t)n, sizeof *out->certs);
    if (!out->certs) {
      snprintf(err, UG_ID_ERR_MAX, "out of memory");
      st = UG_ID_BAD_CHAIN;
    }
    for (const mbedtls_x509_crt *c = &chain; st == UG_ID_OK && c; c = c->next) {
      if (read_cert(c, &out->certs[out->count++])) {
        snprintf(err, UG_ID_ERR_MAX, "out of memory");
        st = UG_ID_BAD_CHAIN;
      }
    }
  }
  if (st == UG_ID_OK) {
    uint32_t flags = 0;
    mbedtls_x509_crt_verify(&chain, &roots, NULL, NULL, &flags, NULL, NULL);
    ug_id_verify_text(flags & ~(uint32_t)TIME_FLAGS, out->verify);
    if (key_pem) {
      rng r;
      out->key_matches = !rng_init(&r) &&
                         !mbedtls_pk_check_pair(&chain.pk, &key, mbedtls_ctr_drbg_random, &r.drbg);
      rng_free(&r);
    }
  }
  mbedtls_pk_free(&key);
  mbedtls_x509_crt_free(&chain);
  mbedtls_x509_crt_free(&roots);
  if (st != UG_ID_OK) ug_id_report_free(out);
  return st;
}

void ug_id_report_free(ug_id_report *r) {
  for (int i = 0; i < r->count; i++)
    for (int j = 0; j < r->certs[i].uri_count; j++) free(r->certs[i].uris[j]);
  free(r->certs);
  memset(r, 0, sizeof *r);
}

// ---- signatures (the SNI relay's registration) -----------------------------------

int ug_id_random(uint8_t *out, size_t len, char err[UG_ID_ERR_MAX]) {
  rng r;
  int ret = rng_init(&r);
  if (!ret) ret = mbedtls_ctr_drbg_random(&r.drbg, out, len);
  rng_free(&r);
  return ret ? fail(err, "random bytes", ret) : 0;
}

int ug_id_sign(const char *key_pem, const uint8_t *data, size_t len, uint8_t sig[UG_ID_SIG_MAX],
               size_t *sig_len, char err[UG_ID_ERR_MAX]) {
  uint8_t hash[32];
  mbedtls_pk_context key;
  mbedtls_pk_init(&key);
  rng r;
  const char *step = "seeding the random generator";
  int ret = rng_init(&r);
  if (!ret)
    step = "reading the private key",
    ret = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, strlen(key_pem) + 1, NULL, 0,
                               mbedtls_ctr_drbg_random, &r.drbg);
  if (!ret) step = "hashing", ret = mbedtls_sha256(data, len, hash, 0);
  if (!ret)
    step = "signing",
    ret = mbedtls_pk_sign(&key, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, UG_ID_SIG_MAX, sig_len,
                          mbedtls_ctr_drbg_random, &r.drbg);
  mbedtls_pk_free(&key);
  rng_free(&r);
  return ret ? fail(err, step, ret) : 0;
}

int ug_id_verify_sig(const char *chain_pem, const uint8_t *data, size_t len, const uint8_t *sig,
                     size_t sig_len, char err[UG_ID_ERR_MAX]) {
  mbedtls_x509_crt chain;
  mbedtls_x509_crt_init(&chain);
  uint8_t hash[32];
  int ok = -1, ret;
  // Parsing and verifying go through PSA (MBEDTLS_USE_PSA_CRYPTO).
  if (ug_crypto_init())
    snprintf(err, UG_ID_ERR_MAX, "PSA crypto failed to start");
  else if (!has_pem(chain_pem, "CERTIFICATE"))
    bad(UG_ID_BAD_CHAIN, err, "certificate", MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT);
  else if ((ret = mbedtls_x509_crt_parse(&chain, (const unsigned char *)chain_pem,
                                         strlen(chain_pem) + 1)) != 0)
    bad(UG_ID_BAD_CHAIN, err, "certificate", ret);
  else if ((ret = mbedtls_sha256(data, len, hash, 0)) != 0)
    fail(err, "hashing", ret);
  else  // the first certificate parsed is the leaf: its key signed
    ok = mbedtls_pk_verify(&chain.pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sig_len) == 0;
  mbedtls_x509_crt_free(&chain);
  return ok;
}
