// aead-bench: what one TLS 1.3 record costs in each of ugate's AEADs, with the
// mbedTLS ugate links (native/mbedtls-config.h, this target's build), through
// PSA as the TLS layer calls it: in place, a 16 KiB record, a 12-byte nonce,
// the 5-byte record header as additional data. Not a test (bench/aead.sh
// builds and runs it per arch; under qemu-user only the ratios between the
// ciphers mean anything).
//
//   aead-bench [SECONDS]    CPU time per cipher and direction (default 1)
//
// Prints one line per cipher: MB/s sealed and opened (CPU time of this
// process) and CPU seconds per GB both ways, then whether this CPU runs AES
// and GCM's multiply in hardware (tls_aes_in_hardware: the suites' order).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "psa/crypto.h"
#include "tls.h"

#define RECORD 16384
#define TAG 16

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct aead {
  const char *name;
  psa_key_type_t type;
  size_t bits;
  psa_algorithm_t alg;
};

static const struct aead aeads[] = {
    {"AES-128-GCM", PSA_KEY_TYPE_AES, 128, PSA_ALG_GCM},
    {"AES-256-GCM", PSA_KEY_TYPE_AES, 256, PSA_ALG_GCM},
    {"ChaCha20-Poly1305", PSA_KEY_TYPE_CHACHA20, 256, PSA_ALG_CHACHA20_POLY1305},
};

// Seals (open: opens) records for `seconds` of CPU time: bytes done, CPU spent.
// Sealing is in place, as the TLS layer does it; opening reads one record
// sealed beforehand (ct) into pt again and again.
static int run(psa_key_id_t key, psa_algorithm_t alg, bool open, double seconds, uint8_t *pt,
               uint8_t *ct, double *bytes, double *spent) {
  static const uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  static const uint8_t hdr[5] = {23, 3, 3, (RECORD + TAG) >> 8, (RECORD + TAG) & 0xff};
  size_t n = 0, len;
  if (open && psa_aead_encrypt(key, alg, nonce, sizeof nonce, hdr, sizeof hdr, pt, RECORD, ct,
                               RECORD + TAG, &len))
    return -1;
  double t0 = cpu_now(), t = t0;
  while (t - t0 < seconds) {
    for (int i = 0; i < 8; i++, n++) {
      psa_status_t s = open ? psa_aead_decrypt(key, alg, nonce, sizeof nonce, hdr, sizeof hdr, ct,
                                               RECORD + TAG, pt, RECORD, &len)
                            : psa_aead_encrypt(key, alg, nonce, sizeof nonce, hdr, sizeof hdr, pt,
                                               RECORD, pt, RECORD + TAG, &len);
      if (s != PSA_SUCCESS || len != (open ? RECORD : RECORD + TAG)) return -1;
    }
    t = cpu_now();
  }
  *bytes = (double)n * RECORD;
  *spent = t - t0;
  return 0;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 1;
  if (argc > 2 || !(seconds > 0)) {
    fprintf(stderr, "usage: aead-bench [SECONDS > 0]\n");
    return 1;
  }
  if (psa_crypto_init() != PSA_SUCCESS) {
    fprintf(stderr, "aead-bench: psa_crypto_init failed\n");
    return 1;
  }
  uint8_t *pt = calloc(1, RECORD + TAG), *ct = calloc(1, RECORD + TAG);
  if (!pt || !ct) return 1;
  int rc = 0;
  for (size_t i = 0; i < sizeof aeads / sizeof *aeads && !rc; i++) {
    const struct aead *a = &aeads[i];
    psa_key_attributes_t at = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_usage_flags(&at, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT);
    psa_set_key_algorithm(&at, a->alg);
    psa_set_key_type(&at, a->type);
    psa_set_key_bits(&at, a->bits);
    uint8_t k[32];
    memset(k, 0x5a, sizeof k);
    psa_key_id_t key;
    if (psa_import_key(&at, k, a->bits / 8, &key) != PSA_SUCCESS) {
      fprintf(stderr, "aead-bench: %s: key import failed (not in this build?)\n", a->name);
      rc = 1;
      break;
    }
    double sb, ss, ob, os;
    if (run(key, a->alg, false, seconds, pt, ct, &sb, &ss) ||
        run(key, a->alg, true, seconds, pt, ct, &ob, &os)) {
      fprintf(stderr, "aead-bench: %s: seal/open failed\n", a->name);
      rc = 1;
    } else {
      printf("%-18s seal %8.1f MB/s  open %8.1f MB/s  CPU s/GB %7.2f\n", a->name, sb / ss / 1e6,
             ob / os / 1e6, (ss + os) / (sb + ob) * 1e9);
    }
    psa_destroy_key(key);
  }
  printf("AES and GCM's multiply in hardware on this CPU: %s\n",
         tls_aes_in_hardware() ? "yes" : "no");
  free(pt);
  free(ct);
  mbedtls_psa_crypto_free();
  return rc;
}
