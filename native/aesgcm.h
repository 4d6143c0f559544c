// AES-GCM in bulk with CPU instructions, under mbedTLS's one-shot GCM calls
// (native/aesgcm.c; linked with native/build.mk's GCM_WRAP).
#ifndef UGATE_AESGCM_H
#define UGATE_AESGCM_H

#include <stdbool.h>

#include "mbedtls/gcm.h"

// Whether mbedtls_gcm_crypt_and_tag and mbedtls_gcm_auth_decrypt run
// several AES-GCM blocks at once with this CPU's instructions (AES-NI,
// PCLMULQDQ and SSSE3 on x86-64, cpuid; AES and PMULL on aarch64,
// AT_HWCAP); when not, mbedTLS's own code runs them. Asked once.
bool aesgcm_fast(void);
// How many one-shot calls the bulk path has run (0 where aesgcm_fast is false).
unsigned long aesgcm_bulk_calls(void);

// mbedTLS's own one-shot GCM (the linker's name for the unwrapped symbol):
// where the bulk path does not apply, and for tests to compare with.
int __real_mbedtls_gcm_crypt_and_tag(mbedtls_gcm_context *ctx, int mode, size_t length,
                                     const unsigned char *iv, size_t iv_len,
                                     const unsigned char *add, size_t add_len,
                                     const unsigned char *input, unsigned char *output,
                                     size_t tag_len, unsigned char *tag);
int __real_mbedtls_gcm_auth_decrypt(mbedtls_gcm_context *ctx, size_t length,
                                    const unsigned char *iv, size_t iv_len,
                                    const unsigned char *add, size_t add_len,
                                    const unsigned char *tag, size_t tag_len,
                                    const unsigned char *input, unsigned char *output);

#endif
