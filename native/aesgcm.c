// AES-GCM in bulk on CPUs with AES and carry-less multiply instructions.
//
// mbedTLS 3.6's GCM runs one 16-byte block at a time: one AES call and one
// GHASH multiply with its reduction per block, about 300 MB/s on an x86-64
// that does ten times that with several blocks in flight. An HBONE tunnel
// spends most of its CPU there (docs/performance.md). The one-shot calls
// PSA's AEAD (so the TLS record layer) and quic.c make,
// mbedtls_gcm_crypt_and_tag and mbedtls_gcm_auth_decrypt, are wrapped at link
// time (-Wl,--wrap, native/build.mk's GCM_WRAP): with a 12-byte nonce, an AES
// key and the instructions on this CPU they run here; anything else goes to
// mbedTLS's own code (__real_...), which stays whole: key schedule, H table,
// streaming API, portable fallback.
//
// The math (NIST SP 800-38D; the carry-less multiply and its reduction as in
// Intel's white paper on PCLMULQDQ and GCM): blocks are byte-reversed, so
// that the field's x^0 is an integer's bit 127 ("reflected"). A carry-less
// product of two reflected values is then x times the field product; the
// key's H is stored times x^-1 (shifted left one bit, folded with
// 0xC2...01) to cancel it. The 256-bit product is folded to 128 bits with
// two multiplies by x^128's remainder (x^7 + x^2 + x + 1, as 0xC2 << 56).
// Eight counter blocks go through AES at once, and eight GHASH products
// (by H^8 ... H^1) are summed before one reduction. One generic body over a
// few vector primitives per arch: x86-64 (AES-NI, PCLMULQDQ, SSSE3's byte
// shuffle) and aarch64 (AESE/AESMC, PMULL), each compiled for those
// instructions only in these functions and taken when the CPU has them.
#define MBEDTLS_ALLOW_PRIVATE_ACCESS
#include "aesgcm.h"

#include <string.h>

#include "mbedtls/platform_util.h"

#if !defined(MBEDTLS_BLOCK_CIPHER_C)
#error "native/aesgcm.c reads the AES key schedule from mbedTLS's block_cipher context"
#endif

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_FAST
#define FAST __attribute__((target("aes,pclmul,ssse3")))
typedef __m128i v128;

static FAST inline v128 load(const void *p) {
  return _mm_loadu_si128((const v128 *)p);
}
static FAST inline void store(void *p, v128 v) {
  _mm_storeu_si128((v128 *)p, v);
}
static FAST inline v128 bswap(v128 v) {
  return _mm_shuffle_epi8(v, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}
// Carry-less 64x64 products of a's and b's low (0) or high (1) halves.
#define CLMUL(a, b, ah, bh) _mm_clmulepi64_si128(a, b, (ah) | (bh) << 4)
static FAST inline v128 swap64(v128 v) {
  return _mm_shuffle_epi32(v, 0x4e);
}
static FAST inline v128 lo_to_hi(v128 v) {
  return _mm_slli_si128(v, 8);
}
static FAST inline v128 hi_to_lo(v128 v) {
  return _mm_srli_si128(v, 8);
}
static FAST inline v128 set64(uint64_t hi, uint64_t lo) {
  return _mm_set_epi64x((long long)hi, (long long)lo);
}
// The counter is the byte-reversed block: its 32-bit counter is lane 0.
static FAST inline v128 ctr_add(v128 c, int n) {
  return _mm_add_epi32(c, _mm_set_epi32(0, 0, 0, n));
}
// All ones where bit 127 is set.
static FAST inline v128 top_mask(v128 v) {
  return _mm_shuffle_epi32(_mm_srai_epi32(v, 31), 0xff);
}
static FAST inline v128 shl1(v128 v) {
  return _mm_or_si128(_mm_slli_epi64(v, 1), lo_to_hi(_mm_srli_epi64(v, 63)));
}

static bool detect(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_AES) && (c & bit_PCLMUL) && (c & bit_SSSE3);
}

static FAST inline v128 zero(void) {
  return _mm_setzero_si128();
}
// AES-NI's round: ShiftRows, SubBytes, MixColumns, then the round key.
#define AES_BLOCKS(k, b, n)                                                                    \
  do {                                                                                         \
    _Pragma("GCC unroll 8") for (int i = 0; i < (n); i++) b[i] ^= (k)->rk[0];                  \
    for (int r = 1; r < (k)->nr; r++) {                                                        \
      v128 rk = (k)->rk[r];                                                                    \
      _Pragma("GCC unroll 8") for (int i = 0; i < (n); i++) b[i] = _mm_aesenc_si128(b[i], rk); \
    }                                                                                          \
    _Pragma("GCC unroll 8") for (int i = 0; i < (n); i++) b[i] =                               \
        _mm_aesenclast_si128(b[i], (k)->rk[(k)->nr]);                                          \
  } while (0)

#elif defined(__aarch64__)
// The ARMv8 crypto extension (AESE/AESMC, PMULL), for these functions only:
// the rest of the build stays plain ARMv8-A. Clang before 16 declares the
// intrinsics only where the feature macros say the target has them.
#if defined(__clang__) && !defined(__ARM_FEATURE_AES)
#define __ARM_FEATURE_AES 1
#define __ARM_FEATURE_CRYPTO 1
#endif
#include <arm_neon.h>
#include <sys/auxv.h>
#define HAVE_FAST
#if defined(__clang__)
#define FAST __attribute__((target("crypto")))
#else
#define FAST __attribute__((target("+crypto")))
#endif
typedef uint8x16_t v128;

static FAST inline v128 load(const void *p) {
  return vld1q_u8(p);
}
static FAST inline void store(void *p, v128 v) {
  vst1q_u8(p, v);
}
static FAST inline v128 zero(void) {
  return vdupq_n_u8(0);
}
static FAST inline v128 bswap(v128 v) {
  v = vrev64q_u8(v);
  return vextq_u8(v, v, 8);
}
static FAST inline v128 clmul(v128 a, v128 b, int ah, int bh) {
  uint64x2_t a64 = vreinterpretq_u64_u8(a), b64 = vreinterpretq_u64_u8(b);
  return vreinterpretq_u8_p128(vmull_p64(ah ? vgetq_lane_u64(a64, 1) : vgetq_lane_u64(a64, 0),
                                         bh ? vgetq_lane_u64(b64, 1) : vgetq_lane_u64(b64, 0)));
}
#define CLMUL(a, b, ah, bh) clmul(a, b, ah, bh)
static FAST inline v128 swap64(v128 v) {
  return vextq_u8(v, v, 8);
}
static FAST inline v128 lo_to_hi(v128 v) {
  return vextq_u8(zero(), v, 8);
}
static FAST inline v128 hi_to_lo(v128 v) {
  return vextq_u8(v, zero(), 8);
}
static FAST inline v128 set64(uint64_t hi, uint64_t lo) {
  return vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(lo), vcreate_u64(hi)));
}
static FAST inline v128 ctr_add(v128 c, int n) {
  uint32x4_t add = vsetq_lane_u32((uint32_t)n, vdupq_n_u32(0), 0);
  return vreinterpretq_u8_u32(vaddq_u32(vreinterpretq_u32_u8(c), add));
}
static FAST inline v128 top_mask(v128 v) {
  return vreinterpretq_u8_s32(vdupq_laneq_s32(vshrq_n_s32(vreinterpretq_s32_u8(v), 31), 3));
}
static FAST inline v128 shl1(v128 v) {
  uint64x2_t w = vreinterpretq_u64_u8(v);
  return vreinterpretq_u8_u64(vshlq_n_u64(w, 1)) |
         lo_to_hi(vreinterpretq_u8_u64(vshrq_n_u64(w, 63)));
}

static bool detect(void) {
  unsigned long hw = getauxval(AT_HWCAP);
  return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
}

// AESE: the round key, ShiftRows, SubBytes; AESMC: MixColumns. The last
// round has no MixColumns and ends with the last key.
#define AES_BLOCKS(k, b, n)                                        \
  do {                                                             \
    for (int r = 0; r < (k)->nr - 1; r++) {                        \
      v128 rk = (k)->rk[r];                                        \
      _Pragma("GCC unroll 8") for (int i = 0; i < (n); i++) b[i] = \
          vaesmcq_u8(vaeseq_u8(b[i], rk));                         \
    }                                                              \
    _Pragma("GCC unroll 8") for (int i = 0; i < (n); i++) b[i] =   \
        vaeseq_u8(b[i], (k)->rk[(k)->nr - 1]) ^ (k)->rk[(k)->nr];  \
  } while (0)
#endif

#if defined(HAVE_FAST)
struct key {
  v128 rk[15];  // round keys 0..nr
  v128 h[8];    // H^1..H^8, reflected, times x^-1
  int nr;
};

static FAST inline v128 aes(const struct key *k, v128 x) {
  v128 b[1] = {x};
  AES_BLOCKS(k, b, 1);
  return b[0];
}

// An unreduced product: low, middle (the two cross terms) and high halves.
struct prod {
  v128 lo, mid, hi;
};

static FAST inline void mul_add(struct prod *p, v128 a, v128 h) {
  p->lo ^= CLMUL(a, h, 0, 0);
  p->hi ^= CLMUL(a, h, 1, 1);
  p->mid ^= CLMUL(a, h, 1, 0) ^ CLMUL(a, h, 0, 1);
}

static FAST inline v128 reduce(struct prod p) {
  v128 lo = p.lo ^ lo_to_hi(p.mid), hi = p.hi ^ hi_to_lo(p.mid);
  const v128 poly = set64(0, 0xc200000000000000u);
  v128 u = CLMUL(lo, poly, 0, 0) ^ swap64(lo);
  return hi ^ CLMUL(u, poly, 0, 0) ^ swap64(u);
}

static FAST inline v128 mul(v128 a, v128 h) {
  struct prod p = {0};
  mul_add(&p, a, h);
  return reduce(p);
}

// x * x^-1 in the reflected form: a shift left, the bit shifted out folded back.
static FAST inline v128 times_xinv(v128 h) {
  return shl1(h) ^ (top_mask(h) & set64(0xc200000000000000u, 1));
}

static FAST void key_init(struct key *k, const mbedtls_aes_context *aes_ctx) {
  k->nr = aes_ctx->nr;
  memcpy(k->rk, aes_ctx->buf + aes_ctx->rk_offset, (size_t)(k->nr + 1) * 16);
  v128 h = bswap(aes(k, zero())), p = h;
  k->h[0] = times_xinv(h);
  for (int i = 1; i < 8; i++) {
    p = mul(p, k->h[0]);
    k->h[i] = times_xinv(p);
  }
}

// GHASH of 8 blocks at p into x: (x ^ b0) H^8 ^ b1 H^7 ^ ... ^ b7 H.
static FAST inline v128 ghash8(const struct key *k, v128 x, const uint8_t *p) {
  struct prod s = {0};
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    v128 b = bswap(load(p + 16 * i));
    if (!i) b ^= x;
    mul_add(&s, b, k->h[7 - i]);
  }
  return reduce(s);
}

static FAST inline v128 ghash1(const struct key *k, v128 x, v128 block) {
  return mul(x ^ bswap(block), k->h[0]);
}

// GHASH of n bytes (the last block padded with zeros).
static FAST v128 ghash(const struct key *k, v128 x, const uint8_t *p, size_t n) {
  for (; n >= 128; p += 128, n -= 128) x = ghash8(k, x, p);
  for (; n >= 16; p += 16, n -= 16) x = ghash1(k, x, load(p));
  if (n) {
    uint8_t last[16] = {0};
    memcpy(last, p, n);
    x = ghash1(k, x, load(last));
  }
  return x;
}

// Counter mode from counter *c over n bytes, with GHASH of the ciphertext.
static FAST v128 crypt(const struct key *k, bool enc, v128 *c, v128 x, const uint8_t *in,
                       uint8_t *out, size_t n) {
  v128 ctr = *c;
  for (; n >= 128; in += 128, out += 128, n -= 128) {
    if (!enc) x = ghash8(k, x, in);
    v128 b[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) b[i] = bswap(ctr_add(ctr, i));
    ctr = ctr_add(ctr, 8);
    AES_BLOCKS(k, b, 8);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) store(out + 16 * i, b[i] ^ load(in + 16 * i));
    if (enc) x = ghash8(k, x, out);
  }
  for (; n; in += 16, out += 16) {
    size_t m = n < 16 ? n : 16;
    uint8_t buf[16] = {0};
    memcpy(buf, in, m);
    v128 v = load(buf);
    if (!enc) x = ghash1(k, x, v);
    v ^= aes(k, bswap(ctr));
    ctr = ctr_add(ctr, 1);
    store(buf, v);
    memset(buf + m, 0, 16 - m);
    if (enc) x = ghash1(k, x, load(buf));
    memcpy(out, buf, m);
    n -= m;
  }
  *c = ctr;
  return x;
}

static FAST void seal_open(const mbedtls_aes_context *aes_ctx, bool enc, size_t len,
                           const uint8_t *iv, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                           uint8_t *out, uint8_t tag[16]) {
  struct key k;
  key_init(&k, aes_ctx);
  uint8_t j0[16];
  memcpy(j0, iv, 12);
  memcpy(j0 + 12, "\0\0\0\1", 4);
  v128 y0 = load(j0), ctr = ctr_add(bswap(y0), 1), x = zero();
  if (aad_len) x = ghash(&k, x, aad, aad_len);
  if (len) x = crypt(&k, enc, &ctr, x, in, out, len);
  x = mul(x ^ set64((uint64_t)aad_len * 8, (uint64_t)len * 8), k.h[0]);
  store(tag, bswap(x) ^ aes(&k, y0));
  mbedtls_platform_zeroize(&k, sizeof k);
}

static bool fast_here(void) {
  // 0: not asked yet, 1: yes, 2: no. Racing first calls all get the same answer.
  static int state;
  int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
  if (!s) __atomic_store_n(&state, s = detect() ? 1 : 2, __ATOMIC_RELAXED);
  return s == 1;
}

// The AES key schedule mbedTLS made for this context, when the fast path may take it.
static const mbedtls_aes_context *fast_key(const mbedtls_gcm_context *ctx, size_t length,
                                           size_t iv_len, size_t add_len, size_t tag_len) {
  const mbedtls_block_cipher_context_t *bc = &ctx->block_cipher_ctx;
#if defined(MBEDTLS_BLOCK_CIPHER_SOME_PSA)
  if (bc->engine != MBEDTLS_BLOCK_CIPHER_ENGINE_LEGACY) return NULL;
#endif
  // mbedTLS's own limits (SP 800-38D 5.2.1.1) go through its checks.
  if (bc->id != MBEDTLS_BLOCK_CIPHER_ID_AES || iv_len != 12 || tag_len < 4 || tag_len > 16 ||
      (uint64_t)length > 0xFFFFFFFE0ull || (uint64_t)add_len >> 61 || !fast_here())
    return NULL;
  const mbedtls_aes_context *a = &bc->ctx.aes;
  return a->nr == 10 || a->nr == 12 || a->nr == 14 ? a : NULL;
}
#endif

// Calls the bulk path took: what test/unit/aesgcm.test.ts reads to tell that
// a CPU without the instructions really ran mbedTLS's code.
static unsigned long bulk_calls;

unsigned long aesgcm_bulk_calls(void) {
  return __atomic_load_n(&bulk_calls, __ATOMIC_RELAXED);
}

bool aesgcm_fast(void) {
#if defined(HAVE_FAST)
  return fast_here();
#else
  return false;
#endif
}

int __wrap_mbedtls_gcm_crypt_and_tag(mbedtls_gcm_context *ctx, int mode, size_t length,
                                     const unsigned char *iv, size_t iv_len,
                                     const unsigned char *add, size_t add_len,
                                     const unsigned char *input, unsigned char *output,
                                     size_t tag_len, unsigned char *tag) {
#if defined(HAVE_FAST)
  const mbedtls_aes_context *a = fast_key(ctx, length, iv_len, add_len, tag_len);
  if (a) {
    __atomic_fetch_add(&bulk_calls, 1, __ATOMIC_RELAXED);
    uint8_t t[16];
    seal_open(a, mode == MBEDTLS_GCM_ENCRYPT, length, iv, add, add_len, input, output, t);
    memcpy(tag, t, tag_len);
    return 0;
  }
#endif
  return __real_mbedtls_gcm_crypt_and_tag(ctx, mode, length, iv, iv_len, add, add_len, input,
                                          output, tag_len, tag);
}

int __wrap_mbedtls_gcm_auth_decrypt(mbedtls_gcm_context *ctx, size_t length,
                                    const unsigned char *iv, size_t iv_len,
                                    const unsigned char *add, size_t add_len,
                                    const unsigned char *tag, size_t tag_len,
                                    const unsigned char *input, unsigned char *output) {
#if defined(HAVE_FAST)
  const mbedtls_aes_context *a = fast_key(ctx, length, iv_len, add_len, tag_len);
  if (a) {
    __atomic_fetch_add(&bulk_calls, 1, __ATOMIC_RELAXED);
    uint8_t t[16];
    seal_open(a, false, length, iv, add, add_len, input, output, t);
    // In constant time: which byte differs tells nothing.
    uint8_t diff = 0;
    for (size_t i = 0; i < tag_len; i++) diff |= t[i] ^ tag[i];
    if (!diff) return 0;
    if (length) mbedtls_platform_zeroize(output, length);
    return MBEDTLS_ERR_GCM_AUTH_FAILED;
  }
#endif
  return __real_mbedtls_gcm_auth_decrypt(ctx, length, iv, iv_len, add, add_len, tag, tag_len, input,
                                         output);
}
