/* ugate's mbedTLS 3.6 configuration (MBEDTLS_CONFIG_FILE for the library
 * and for our code; native/build.mk passes it). It starts from nothing and
 * names only what ugate calls, so the library stays small: every module
 * left out compiles to an empty object.
 *
 * Users, and what each needs:
 *   QUIC Initial decryption (native/quic.c, RFC 9001 5 / RFC 9369):
 *     HKDF-SHA256 (extract, expand-label), AES-128-GCM, AES-128-ECB
 *     encryption for header protection.
 *   TLS 1.3 (the mesh work, planned): adds
 *     PSA crypto (3.6's TLS 1.3 requires it), SSL/X.509/PEM/ASN.1, SHA-384,
 *     AES-256 (drop MBEDTLS_AES_ONLY_128_BIT_KEY_LENGTH), X25519 + P-256
 *     ECDH, ECDSA and RSA (PKCS#1 v1.5, PSS) verification, entropy and a
 *     DRBG; a section below per layer. */
#ifndef UGATE_MBEDTLS_CONFIG_H
#define UGATE_MBEDTLS_CONFIG_H

/* ---- platform ---------------------------------------------------------- */
/* No MBEDTLS_HAVE_ASM: only bignum uses it, and nothing here needs bignum
 * yet. No MBEDTLS_PLATFORM_C: libc's calloc/free/snprintf are used as they
 * are. No AES-NI/AESCE: the sniffer decrypts one packet per flow, and the
 * portable code keeps every target's build the same. */

/* ---- hashes and key derivation ----------------------------------------- */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_HKDF_C
/* One compression loop instead of an unrolled one: about 1 KB less code. */
#define MBEDTLS_SHA256_SMALLER

/* ---- ciphers ------------------------------------------------------------ */
#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
/* GCM and header protection only ever encrypt with the block cipher: no
 * decryption tables or code. (Also leaves out CBC, XTS, DES: none wanted.) */
#define MBEDTLS_BLOCK_CIPHER_NO_DECRYPT
/* QUIC Initial keys are AES-128; TLS 1.3 will want AES-256 too. */
#define MBEDTLS_AES_ONLY_128_BIT_KEY_LENGTH
/* 2 KB of AES tables (computed at start-up, in .bss) instead of 8 KB. */
#define MBEDTLS_AES_FEWER_TABLES

#endif
