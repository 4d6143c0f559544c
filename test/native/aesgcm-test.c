// Driver of mbedTLS's one-shot GCM calls as ugate links them (native/aesgcm.c
// in front of mbedTLS's own code) for test/unit/aesgcm.test.ts, which holds
// each answer to Node's crypto. First lines out: "fast yes|no" (aesgcm_fast),
// "cpu aes+pclmul yes|no" (cpuid as this CPU answers it; "-" off x86-64);
// last: "bulk N", the calls native/aesgcm.c's bulk path ran (aesgcm_bulk_calls).
// One case a line on stdin, fields separated by one space, bytes in hex
// ("-" when empty):
//   e OFF INPLACE TAGLEN KEY IV AAD PLAINTEXT        -> "CIPHERTEXT TAG"
//   d OFF INPLACE TAGLEN KEY IV AAD CIPHERTEXT TAG   -> "ok PLAINTEXT" | "fail"
// Each input sits OFF (0..15) bytes into a buffer that ends where it ends (a
// read past it is an ASan report); INPLACE 1 has the output overwrite it. The
// same case also goes to mbedTLS's own code (__real_...), which must agree.
#include "../../native/aesgcm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/gcm.h"
#if defined(__x86_64__)
#include <cpuid.h>
#endif

struct bytes {
  uint8_t *mem, *p;  // p: OFF bytes into mem
  size_t n;
};

static int nib(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// The next field of *s as bytes at offset off of an exact-size buffer; false when not hex.
static bool field(char **s, size_t off, struct bytes *b) {
  char *f = strsep(s, " ");
  if (!f) return false;
  size_t chars = strcmp(f, "-") ? strlen(f) : 0;
  if (chars % 2) return false;
  b->n = chars / 2;
  b->mem = malloc(off + b->n + 1);  // +1: never a zero-size malloc
  if (!b->mem) return false;
  b->p = b->mem + off;
  for (size_t i = 0; i < b->n; i++) {
    int hi = nib(f[2 * i]), lo = nib(f[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    b->p[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

static void put(const uint8_t *p, size_t n) {
  if (!n) putchar('-');
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

// One case: 0 done (answer printed), 1 a bad line, 2 the two implementations disagree.
static int one(char *line) {
  char *s = line, *op = strsep(&s, " "), *end;
  size_t off = s ? strtoul(strsep(&s, " "), &end, 10) : 99;
  int inplace = s ? atoi(strsep(&s, " ")) : 0;
  size_t tag_len = s ? strtoul(strsep(&s, " "), &end, 10) : 0;
  bool enc = op && !strcmp(op, "e");
  struct bytes key = {0}, iv = {0}, aad = {0}, in = {0}, tag = {0};
  int rc = 1;
  if (!op || off > 15 || tag_len > 16 || !field(&s, off, &key) || !field(&s, off, &iv) ||
      !field(&s, off, &aad) || !field(&s, off, &in) || (!enc && !field(&s, off, &tag)) ||
      (!enc && tag.n != tag_len))
    goto out;
  uint8_t *out = inplace ? in.p : malloc(in.n + 1), *ref = malloc(in.n + 1);
  uint8_t *ref_in = malloc(in.n + 1), t[16], ref_t[16];
  memcpy(ref_in, in.p, in.n);
  mbedtls_gcm_context ctx;
  mbedtls_gcm_init(&ctx);
  int r = mbedtls_gcm_setkey(&ctx, MBEDTLS_CIPHER_ID_AES, key.p, (unsigned)key.n * 8), ref_r = r;
  if (!r && enc) {
    r = mbedtls_gcm_crypt_and_tag(&ctx, MBEDTLS_GCM_ENCRYPT, in.n, iv.p, iv.n, aad.p, aad.n, in.p,
                                  out, tag_len, t);
    ref_r = __real_mbedtls_gcm_crypt_and_tag(&ctx, MBEDTLS_GCM_ENCRYPT, in.n, iv.p, iv.n, aad.p,
                                             aad.n, ref_in, ref, tag_len, ref_t);
  } else if (!r) {
    r = mbedtls_gcm_auth_decrypt(&ctx, in.n, iv.p, iv.n, aad.p, aad.n, tag.p, tag_len, in.p, out);
    ref_r = __real_mbedtls_gcm_auth_decrypt(&ctx, in.n, iv.p, iv.n, aad.p, aad.n, tag.p, tag_len,
                                            ref_in, ref);
  }
  mbedtls_gcm_free(&ctx);
  if (r != ref_r || (!r && memcmp(out, ref, in.n)) || (!r && enc && memcmp(t, ref_t, tag_len))) {
    fprintf(stderr, "disagree with mbedTLS (%d, its %d): %s\n", r, ref_r, line);
    rc = 2;
  } else if (enc && !r) {
    put(out, in.n);
    putchar(' ');
    put(t, tag_len);
    putchar('\n');
    rc = 0;
  } else if (!enc) {
    if (r)
      printf("fail %d\n", r);
    else {
      printf("ok ");
      put(out, in.n);
      putchar('\n');
    }
    rc = 0;
  } else
    printf("error %d\n", r), rc = 0;
  if (!inplace) free(out);
  free(ref);
  free(ref_in);
out:
  free(key.mem), free(iv.mem), free(aad.mem), free(in.mem), free(tag.mem);
  return rc;
}

int main(void) {
  static char line[1 << 16];
  printf("fast %s\n", aesgcm_fast() ? "yes" : "no");
#if defined(__x86_64__)
  unsigned a, b, c, d;
  bool aes = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_AES) && (c & bit_PCLMUL);
  printf("cpu aes+pclmul %s\n", aes ? "yes" : "no");
#else
  printf("cpu aes+pclmul -\n");
#endif
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    int rc = one(line);
    if (rc == 1) fprintf(stderr, "bad line: %s\n", line);
    if (rc) return rc;
  }
  printf("bulk %lu\n", aesgcm_bulk_calls());
  return 0;
}
