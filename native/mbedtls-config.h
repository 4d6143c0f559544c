/* ugate's mbedTLS 3.6 configuration (MBEDTLS_CONFIG_FILE for the library
 * and for our code; native/build.mk passes it). It starts from nothing and
 * names only what ugate calls, so the library stays small: every module
 * left out compiles to an empty object.
 *
 * Users, and what each needs:
 *   QUIC Initial decryption (native/quic.c, RFC 9001 5 / RFC 9369):
 *     HKDF-SHA256 (extract, expand-label), AES-128-GCM, AES-128-ECB
 *     encryption for header protection.
 *   Node identities (native/identity.c, `ugate identity`): X.509
 *     certificate parse, verify and write, PEM, P-256 keys and ECDSA
 *     sign/verify, RSA verification (PKCS#1 v1.5 and PSS: mesh CAs are often
 *     RSA), SHA-384, a CTR-DRBG seeded from getrandom(2).
 *   Mutual TLS 1.3 for the mesh (native/tls.c, HBONE): the SSL library
 *     (libmbedtls), TLS 1.3 client and server only, ephemeral X25519 or
 *     P-256 key exchange, TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384
 *     and TLS_CHACHA20_POLY1305_SHA256, ALPN; PSA crypto, which 3.6's
 *     TLS 1.3 requires (its key derivation, AEAD and signatures go through
 *     PSA). No TLS 1.2, tickets, PSK, renegotiation or early data: ztunnel
 *     uses none of them.
 *   DNS over TLS to public resolvers (native/tls.c's web PKI mode): the
 *     same TLS 1.3 client with SNI, and P-384 (the keys of many public CAs
 *     and of some servers). */
#ifndef UGATE_MBEDTLS_CONFIG_H
#define UGATE_MBEDTLS_CONFIG_H

/* ---- platform ---------------------------------------------------------- */
/* No MBEDTLS_PLATFORM_C: libc's calloc/free/snprintf are used as they are.
 * No MBEDTLS_HAVE_ASM but on x86-64 (below): bignum's portable C serves the
 * few signatures an identity or a handshake needs. */
/* Certificate validity is checked against the clock (gmtime_r). */
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE

/* ---- hashes and key derivation ----------------------------------------- */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_HKDF_C
/* One compression loop instead of an unrolled one: about 1 KB less code. */
#define MBEDTLS_SHA256_SMALLER
/* Certificates signed with ECDSA-SHA384 or RSA-SHA384. */
#define MBEDTLS_SHA384_C
/* The same for SHA-384 (a handshake's transcript, a signature): 3 KB less on
 * 32-bit MIPS, where its 64-bit rounds are long. */
#define MBEDTLS_SHA512_SMALLER
/* So that a CA bundle's roots self-signed with SHA-1 (30 of Debian's 144,
 * among them DigiCert Global Root CA and GlobalSign Root CA) or SHA-512 (2)
 * parse at all: a root's own signature is never checked, and the default
 * verification profile still refuses SHA-1 in a chain. SHA-1 also makes the
 * WebSocket accept key (mod_identity.c's sha1). */
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA512_C

/* ---- ciphers ------------------------------------------------------------ */
#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
/* GCM and header protection only ever encrypt with the block cipher: no
 * decryption tables or code. (Also leaves out CBC, XTS, DES: none wanted.) */
#define MBEDTLS_BLOCK_CIPHER_NO_DECRYPT
/* AES-256 stays: the CTR-DRBG's key is AES-256, and TLS_AES_256_GCM_SHA384
 * is ztunnel's first suite. */
/* 2 KB of AES tables (computed at start-up, in .bss) instead of 8 KB. */
#define MBEDTLS_AES_FEWER_TABLES
/* AES and GCM's multiply in CPU instructions where the target may have them,
 * chosen per target by the compiler's own macros; at run time mbedTLS asks
 * the CPU (cpuid on x86-64, getauxval(AT_HWCAP) on aarch64: HWCAP_AES) and
 * falls back to the portable code, so a CPU without them (Cortex-A53 SoCs
 * built without the crypto option) runs the same binary. AES-GCM is what an
 * HBONE tunnel spends its CPU on (docs/performance.md); the QUIC sniffer's
 * AES goes the same way.
 * x86-64: AES-NI and PCLMULQDQ. Without -maes -mpclmul (which the whole
 * build would then assume) mbedTLS has them as inline assembly only, which
 * MBEDTLS_HAVE_ASM enables (and with it bignum's x86-64 assembly).
 * mbedTLS's GCM takes one block at a time: on both archs the one-shot GCM
 * calls (TLS records, QUIC Initials) go to native/aesgcm.c first, eight
 * blocks at a time, with the key schedule mbedTLS's AES made here. */
#if defined(__x86_64__)
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_AESNI_C
/* aarch64: the ARMv8 crypto extension (AESE/AESMC, PMULL), compiled for it
 * whatever -march says. */
#elif defined(__aarch64__)
#define MBEDTLS_AESCE_C
#endif
/* TLS_CHACHA20_POLY1305_SHA256: in portable C about twice as fast as
 * portable AES-GCM (bench/aead.sh), so the suite of the targets without AES
 * instructions (MIPS, ARMv7), and understood by every target so that a
 * router can have it from any peer (native/tls.c orders the suites). */
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C

/* ---- random numbers ----------------------------------------------------- */
/* The platform source is getrandom(2) (entropy_poll.c, Linux). */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C

/* ---- public keys --------------------------------------------------------- */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
/* Public CAs (DigiCert G3, ISRG Root X2, GTS R4, Let's Encrypt E*) sign with P-384. */
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
/* Fast reduction modulo the P-256 prime: every signature and verification
 * (registrations of relay over SNI, TLS handshakes) is several times cheaper. */
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECDSA_C
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21
/* A node key is P-256, so RSA is verification only; the private operation
 * is linked through the PK tables all the same. Without its CRT path it is
 * 1.5 KB smaller (and slower, should an RSA key ever sign). */
#define MBEDTLS_RSA_NO_CRT
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PK_WRITE_C

/* ---- encodings ------------------------------------------------------------ */
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_PEM_WRITE_C

/* ---- X.509 (libmbedx509) ------------------------------------------------- */
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_CREATE_C
#define MBEDTLS_X509_CRT_WRITE_C
/* Certificates signed with RSASSA-PSS (mesh CAs may use it). */
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT
/* No human-readable dumps (mbedtls_x509_crt_info and friends): identity.c
 * reads the fields it shows itself. */
#define MBEDTLS_X509_REMOVE_INFO

/* ---- PSA crypto (for TLS 1.3) --------------------------------------------- */
/* Without MBEDTLS_PSA_CRYPTO_CONFIG, PSA's algorithms are derived from the
 * legacy modules above: nothing here adds an algorithm. */
#define MBEDTLS_PSA_CRYPTO_C
#define MBEDTLS_USE_PSA_CRYPTO
/* Key slots grow with the connections (each holds its traffic keys) instead
 * of a fixed table that would cap the number of tunnels. */
#define MBEDTLS_PSA_KEY_STORE_DYNAMIC
/* Our buffers are this process's own: no copy of every input and output
 * (each TLS record's AEAD was a calloc, a copy and a free, and musl's free
 * of 16 KiB an madvise: ~45% of an HBONE tunnel's CPU in bulk). In-place
 * AEAD, as the TLS layer does it, stays supported. */
#define MBEDTLS_PSA_ASSUME_EXCLUSIVE_BUFFERS
/* The relay thread runs handshakes while the JS thread loads identities: PSA's
 * key store and random generator take a lock. */
#define MBEDTLS_THREADING_C
#define MBEDTLS_THREADING_PTHREAD
/* Ephemeral key exchange: X25519 (what clients offer first) and P-256. */
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED

/* ---- TLS 1.3 (libmbedtls) --------------------------------------------------- */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
/* 3.6's TLS 1.3 code requires it (check_config). */
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE
#define MBEDTLS_SSL_ALPN
/* A DNS-over-TLS resolver named by a host name gets it as SNI. */
#define MBEDTLS_SSL_SERVER_NAME_INDICATION

#endif
