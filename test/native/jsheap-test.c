// Driver of test/unit/jsheap.test.ts: native/jsheap.c's allocator, built with
// ASan and UBSan (UG_JSHEAP_UNDER_ASAN keeps the allocator in that build).
// A fixed-seed run of mallocs, callocs, reallocs and frees over sizes from 0
// to past the largest class, every live block filled with its own byte: a
// block that overlaps another, loses bytes in a realloc or is handed out
// twice shows as a wrong byte. Prints "ok OPS LIVE" or the first fault.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ugate.h"

#define SLOTS 512
#define OPS 200000

static struct {
  uint8_t *p;
  size_t n;
  uint8_t fill;
} slot[SLOTS];

static uint64_t seed = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void) {  // xorshift64*
  seed ^= seed >> 12;
  seed ^= seed << 25;
  seed ^= seed >> 27;
  return (uint32_t)((seed * 0x2545f4914f6cdd1du) >> 32);
}

// Mostly small (QuickJS's arenas and its larger objects), some around the
// class limit, a few far above it (malloc's).
static size_t pick_size(void) {
  switch (rnd() % 8) {
    case 0:
      return rnd() % 17;
    case 1:
    case 2:
      return rnd() % 600;
    case 3:
      return 4000 + rnd() % 200;  // QuickJS's arena: 4 KiB with its header
    case 4:
      return rnd() % 5000;
    case 5:
      return rnd() % 40000;
    case 6:
      return 30000 + rnd() % 10000;
    default:
      return rnd() % 150000;
  }
}

static int check(const JSMallocFunctions *h, int i, const char *when) {
  for (size_t k = 0; k < slot[i].n; k++)
    if (slot[i].p[k] != slot[i].fill) {
      printf("fault: slot %d byte %zu of %zu is %u, not %u (%s)\n", i, k, slot[i].n, slot[i].p[k],
             slot[i].fill, when);
      return -1;
    }
  if (slot[i].p && h->js_malloc_usable_size(slot[i].p) < slot[i].n) {
    printf("fault: slot %d usable size %zu < %zu\n", i, h->js_malloc_usable_size(slot[i].p),
           slot[i].n);
    return -1;
  }
  if (slot[i].p && ((uintptr_t)slot[i].p & 7)) {
    printf("fault: slot %d at %p is not 8-byte aligned\n", i, (void *)slot[i].p);
    return -1;
  }
  return 0;
}

int main(void) {
  const JSMallocFunctions *h = ug_jsheap();
  if (!h) {
    printf("fault: no allocator in this build\n");
    return 1;
  }
  for (int op = 0; op < OPS; op++) {
    int i = (int)(rnd() % SLOTS);
    if (check(h, i, "before") < 0) return 1;
    uint32_t what = rnd() % 4;
    if (slot[i].p && what == 0) {
      h->js_free(NULL, slot[i].p);
      slot[i].p = NULL;
      slot[i].n = 0;
      continue;
    }
    size_t n = pick_size();
    uint8_t fill = (uint8_t)(op % 251 + 1);
    if (slot[i].p && what == 1) {  // realloc keeps the old bytes up to the new size
      uint8_t *p = h->js_realloc(NULL, slot[i].p, n);
      if (!p && n) {
        printf("fault: realloc %zu failed\n", n);
        return 1;
      }
      slot[i].p = p;
      slot[i].n = n < slot[i].n ? n : slot[i].n;
      if (check(h, i, "after realloc") < 0) return 1;
      slot[i].n = n;
    } else {
      if (slot[i].p) h->js_free(NULL, slot[i].p);
      if (what == 2) {
        uint8_t *p = h->js_calloc(NULL, 1, n);
        for (size_t k = 0; p && k < n; k++)
          if (p[k]) {
            printf("fault: calloc %zu: byte %zu is %u\n", n, k, p[k]);
            return 1;
          }
        slot[i].p = p;
      } else {
        slot[i].p = h->js_malloc(NULL, n);
      }
      if (!slot[i].p) {
        printf("fault: alloc %zu failed\n", n);
        return 1;
      }
      slot[i].n = n;
    }
    slot[i].fill = fill;
    if (slot[i].p) memset(slot[i].p, fill, n);
  }
  int live = 0;
  for (int i = 0; i < SLOTS; i++) {
    if (check(h, i, "at the end") < 0) return 1;
    if (slot[i].p) live++;
    h->js_free(NULL, slot[i].p);
  }
  if (h->js_calloc(NULL, SIZE_MAX / 2, 4) != NULL) {
    printf("fault: an overflowing calloc succeeded\n");
    return 1;
  }
  printf("ok %d %d\n", OPS, live);
  return 0;
}
