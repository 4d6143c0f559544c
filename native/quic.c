// QUIC client Initial packets opened with their version's initial keys:
// HKDF-SHA256 from the version's salt and the Destination Connection ID,
// header protection removed with AES-128-ECB over the sample, the payload
// opened with AES-128-GCM (RFC 9001 5.2-5.4; RFC 9369 3.3 for v2).
#include "quic.h"

#include <stdlib.h>
#include <string.h>

#include "mbedtls/aes.h"
#include "mbedtls/gcm.h"
#include "mbedtls/hkdf.h"
#include "mbedtls/md.h"

#define SECRET_LEN 32  // SHA-256
#define KEY_LEN 16     // AES-128
#define IV_LEN 12
#define TAG_LEN 16
#define SAMPLE_LEN 16
#define MAX_PN_LEN 4

typedef struct {
  uint32_t version;
  unsigned initial_type, retry_type;  // long header type bits (byte 0, 0x30)
  uint8_t salt[20];
  const char *key, *iv, *hp;  // HKDF labels
} quic_version;

static const quic_version versions[] = {
    {UG_QUIC_V1,
     0,
     3,
     {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
      0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a},
     "quic key",
     "quic iv",
     "quic hp"},
    {UG_QUIC_V2,
     1,
     0,
     {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
      0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
     "quicv2 key",
     "quicv2 iv",
     "quicv2 hp"},
};

const char *ug_quic_strerror(ug_quic_err err) {
  switch (err) {
    case UG_QUIC_OK:
      return "ok";
    case UG_QUIC_NOT_QUIC:
      return "not a QUIC long header packet";
    case UG_QUIC_NOT_INITIAL:
      return "not an Initial packet";
    case UG_QUIC_VERSION:
      return "unsupported QUIC version";
    case UG_QUIC_MALFORMED:
      return "a header field is out of range";
    case UG_QUIC_TRUNCATED:
      return "packet truncated";
    case UG_QUIC_BAD_TAG:
      return "AEAD tag does not verify";
  }
  return "unknown error";
}

// RFC 9000 16: a variable-length integer at p[*pos]; -1 when it runs past len.
static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v) {
  if (*pos >= len) return -1;
  size_t n = (size_t)1 << (p[*pos] >> 6);
  if (len - *pos < n) return -1;
  uint64_t x = p[*pos] & 0x3f;
  for (size_t i = 1; i < n; i++) x = x << 8 | p[*pos + i];
  *pos += n;
  *v = x;
  return 0;
}

// RFC 8446 7.1 HKDF-Expand-Label with an empty context, SHA-256.
static int expand_label(const uint8_t secret[SECRET_LEN], const char *label, uint8_t *out,
                        size_t out_len) {
  uint8_t info[2 + 1 + 6 + 32 + 1];
  size_t l = strlen(label), n = 0;
  info[n++] = (uint8_t)(out_len >> 8);
  info[n++] = (uint8_t)out_len;
  info[n++] = (uint8_t)(6 + l);
  memcpy(info + n, "tls13 ", 6);
  n += 6;
  memcpy(info + n, label, l);
  n += l;
  info[n++] = 0;
  return mbedtls_hkdf_expand(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), secret, SECRET_LEN, info,
                             n, out, out_len);
}

typedef struct {
  uint8_t key[KEY_LEN], iv[IV_LEN], hp[KEY_LEN];
} initial_keys;

// RFC 9001 5.2: the client's Initial keys for this DCID.
static int client_keys(const quic_version *v, const uint8_t *dcid, size_t dcid_len,
                       initial_keys *k) {
  uint8_t initial[SECRET_LEN], client[SECRET_LEN];
  const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  if (mbedtls_hkdf_extract(sha256, v->salt, sizeof v->salt, dcid, dcid_len, initial) ||
      expand_label(initial, "client in", client, SECRET_LEN) ||
      expand_label(client, v->key, k->key, KEY_LEN) || expand_label(client, v->iv, k->iv, IV_LEN) ||
      expand_label(client, v->hp, k->hp, KEY_LEN))
    return -1;
  return 0;
}

// RFC 9001 5.4.3: the header protection mask, AES-ECB of the sample.
static int hp_mask(const uint8_t hp[KEY_LEN], const uint8_t *sample, uint8_t mask[16]) {
  mbedtls_aes_context aes;
  mbedtls_aes_init(&aes);
  int rc = mbedtls_aes_setkey_enc(&aes, hp, KEY_LEN * 8) ||
           mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, sample, mask);
  mbedtls_aes_free(&aes);
  return rc ? -1 : 0;
}

static ug_quic_err open_payload(const initial_keys *k, const uint8_t *aad, size_t aad_len,
                                uint64_t pn, const uint8_t *ct, size_t ct_len, uint8_t *out) {
  uint8_t nonce[IV_LEN];
  memcpy(nonce, k->iv, IV_LEN);
  for (int i = 0; i < 8; i++) nonce[IV_LEN - 1 - i] ^= (uint8_t)(pn >> (8 * i));
  mbedtls_gcm_context gcm;
  mbedtls_gcm_init(&gcm);
  int rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k->key, KEY_LEN * 8);
  if (rc == 0)
    rc = mbedtls_gcm_auth_decrypt(&gcm, ct_len, nonce, IV_LEN, aad, aad_len, ct + ct_len, TAG_LEN,
                                  ct, out);
  mbedtls_gcm_free(&gcm);
  return rc ? UG_QUIC_BAD_TAG : UG_QUIC_OK;
}

ug_quic_err ug_quic_open_initial(const uint8_t *pkt, size_t len, uint8_t *out,
                                 ug_quic_initial *info) {
  memset(info, 0, sizeof *info);
  if (len < 7 || !(pkt[0] & 0x80)) return UG_QUIC_NOT_QUIC;
  uint32_t version = (uint32_t)pkt[1] << 24 | (uint32_t)pkt[2] << 16 | pkt[3] << 8 | pkt[4];
  info->version = version;
  const quic_version *v = NULL;
  for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
    if (versions[i].version == version) v = &versions[i];
  if (!v) return UG_QUIC_VERSION;                 // also version negotiation (0)
  if (!(pkt[0] & 0x40)) return UG_QUIC_NOT_QUIC;  // the fixed bit (RFC 9000 17.2)

  size_t pos = 5;
  uint8_t dcid_len = pkt[pos++];
  if (dcid_len > UG_QUIC_MAX_CID) return UG_QUIC_MALFORMED;
  if (len - pos < dcid_len + 1u) return UG_QUIC_TRUNCATED;
  info->dcid_len = dcid_len;
  memcpy(info->dcid, pkt + pos, dcid_len);
  pos += dcid_len;
  uint8_t scid_len = pkt[pos++];
  if (scid_len > UG_QUIC_MAX_CID) return UG_QUIC_MALFORMED;
  if (len - pos < scid_len) return UG_QUIC_TRUNCATED;
  pos += scid_len;

  unsigned type = (pkt[0] >> 4) & 3;
  uint64_t n;
  if (type != v->initial_type) {
    if (type == v->retry_type) {
      info->packet_len = len;  // a Retry has no Length: it is the rest of the datagram
    } else {
      if (varint(pkt, len, &pos, &n)) return UG_QUIC_TRUNCATED;
      if (n > len - pos) return UG_QUIC_TRUNCATED;
      info->packet_len = pos + n;
    }
    return UG_QUIC_NOT_INITIAL;
  }
  if (varint(pkt, len, &pos, &n)) return UG_QUIC_TRUNCATED;  // token length
  if (n > len - pos) return UG_QUIC_TRUNCATED;
  pos += n;
  if (varint(pkt, len, &pos, &n)) return UG_QUIC_TRUNCATED;  // length: packet number + payload
  if (n > len - pos) return UG_QUIC_TRUNCATED;
  size_t pn_off = pos, end = pos + n;
  // The sample starts 4 bytes after the packet number's start (5.4.2);
  // that also leaves room for the longest packet number and the tag.
  if (end - pn_off < MAX_PN_LEN + SAMPLE_LEN) return UG_QUIC_TRUNCATED;
  info->packet_len = end;

  initial_keys k;
  uint8_t mask[16];
  if (client_keys(v, info->dcid, dcid_len, &k) || hp_mask(k.hp, pkt + pn_off + MAX_PN_LEN, mask))
    return UG_QUIC_BAD_TAG;  // mbedTLS refused its own parameters: cannot happen
  // The unprotected header, the AEAD's associated data, goes first in out;
  // the plaintext follows it and then moves to out[0].
  uint8_t first = pkt[0] ^ (mask[0] & 0x0f);
  size_t pn_len = (first & 3) + 1, hdr_len = pn_off + pn_len;
  memcpy(out, pkt, hdr_len);
  out[0] = first;
  uint64_t pn = 0;
  for (size_t i = 0; i < pn_len; i++) {
    out[pn_off + i] ^= mask[1 + i];
    pn = pn << 8 | out[pn_off + i];
  }
  // For the first packets of a connection the truncated number is the full
  // one (RFC 9000 A.3 with no packet received yet).
  info->pn = pn;
  size_t ct_len = end - hdr_len - TAG_LEN;
  ug_quic_err err = open_payload(&k, out, hdr_len, pn, pkt + hdr_len, ct_len, out + hdr_len);
  if (err) return err;
  memmove(out, out + hdr_len, ct_len);
  info->frames_len = ct_len;
  if (first & 0x0c) return UG_QUIC_MALFORMED;  // reserved bits (17.2), checked once authenticated
  return UG_QUIC_OK;
}
