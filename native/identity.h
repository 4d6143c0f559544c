// Node identities: P-256 keys and X.509 certificates (mbedTLS), for
// `ugate identity` and, later, mutual TLS. No JS here (mod_identity.c binds it).
#ifndef UG_IDENTITY_H
#define UG_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "mbedtls/pk.h"
#include "mbedtls/x509.h"

#define UG_ID_ERR_MAX 160

// What ug_id_create makes: a self-signed CA and a node certificate it signs.
// Names are mbedTLS DN strings ("O=td,CN=x"); times "YYYYMMDDhhmmss" (UTC).
typedef struct {
  const char *ca_subject, *ca_not_before, *ca_not_after;
  const char *node_subject, *node_not_before, *node_not_after;
  const char *uri;  // the node's URI SAN (its SPIFFE id)
} ug_id_params;

// PEM texts, malloc'd; ug_id_pems_free frees them.
typedef struct {
  char *root_cert, *ca_key, *cert_chain, *key;
} ug_id_pems;

// 0, or -1 with a message in err.
int ug_id_create(const ug_id_params *p, ug_id_pems *out, char err[UG_ID_ERR_MAX]);
void ug_id_pems_free(ug_id_pems *p);

// One certificate of a chain, as `identity show` reports it.
#define UG_ID_TIME_LEN 32  // "2026-12-06T01:02:03Z" + NUL, with room
#define UG_ID_MAX_URIS 4
typedef struct {
  char subject[256], issuer[256];
  char not_before[UG_ID_TIME_LEN], not_after[UG_ID_TIME_LEN];
  char *uris[UG_ID_MAX_URIS];  // malloc'd, NUL-terminated; the rest NULL
  int uri_count;
  uint8_t public_key[65];  // uncompressed P-256 point; public_key_len 0 for other keys
  size_t public_key_len;
} ug_id_cert;

typedef struct {
  ug_id_cert *certs;  // the chain, leaf first
  int count;
  // The chain against the roots: "" when it verifies, else the reasons
  // ("not-trusted", "bad-signature-algorithm", ...) separated by ", ".
  char verify[UG_ID_ERR_MAX];
  int key_matches;  // key_pem given: 1 when it is the leaf's private key
} ug_id_report;

// Which input failed: the chain, the roots or the key.
typedef enum { UG_ID_OK, UG_ID_BAD_CHAIN, UG_ID_BAD_ROOT, UG_ID_BAD_KEY } ug_id_status;

// Parses PEM texts (NUL-terminated); key_pem may be NULL. Time checks are the
// caller's (it names the file and the date); verify ignores them.
ug_id_status ug_id_inspect(const char *chain_pem, const char *root_pem, const char *key_pem,
                           ug_id_report *out, char err[UG_ID_ERR_MAX]);
void ug_id_report_free(ug_id_report *r);

// Signatures of the SNI relay's registration (src/core/sni-relay.ts says what is
// signed): ECDSA (or RSA) over SHA-256, DER-encoded as X.509 carries them.
#define UG_ID_SIG_MAX 512  // MBEDTLS_PK_SIGNATURE_MAX_SIZE for the keys we parse
// 0, or -1 with a message in err.
int ug_id_random(uint8_t *out, size_t len, char err[UG_ID_ERR_MAX]);
int ug_id_sign(const char *key_pem, const uint8_t *data, size_t len, uint8_t sig[UG_ID_SIG_MAX],
               size_t *sig_len, char err[UG_ID_ERR_MAX]);
// 1: sig is the signature of data by the key of chain_pem's first (leaf)
// certificate; 0: it is not; -1: the chain does not parse (err says why).
// Whether the chain is trusted is ug_id_inspect's question.
int ug_id_verify_sig(const char *chain_pem, const uint8_t *data, size_t len, const uint8_t *sig,
                     size_t sig_len, char err[UG_ID_ERR_MAX]);

// Shared with the mesh TLS (tls.c):
// PSA crypto, which keys and signatures go through; 0 or -1. Any thread, any number of times.
int ug_crypto_init(void);
// "2026-12-06T01:02:03Z".
void ug_id_time_text(char out[UG_ID_TIME_LEN], const mbedtls_x509_time *t);
// The names of X.509 verify flags ("not-trusted, key-usage"), "" for none.
void ug_id_verify_text(uint32_t flags, char out[UG_ID_ERR_MAX]);
// A P-256 key's uncompressed point into out: 65, or 0 for any other key.
size_t ug_id_public_key(const mbedtls_pk_context *pk, uint8_t out[65]);
// The original ugate's node id: base32 (RFC 4648, no padding) of SHA-256 of
// the uncompressed P-256 point; 0, or -1 (out "") when it is not one.
#define UG_ID_NODE_ID_LEN 52
int ug_id_node_id(const uint8_t *public_key, size_t len, char out[UG_ID_NODE_ID_LEN + 1]);

#endif
