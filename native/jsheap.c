// QuickJS's backing allocator (JSMallocFunctions): size classes carved from
// 64 KiB chunks mapped pre-faulted (MAP_POPULATE), each class a free list.
// QuickJS serves its small objects from 4 KiB arenas of its own; what reaches
// this allocator is those arenas and the larger blocks (function bytecode,
// atom and shape tables). Why not musl's malloc: reading the bundle at start
// makes thousands of them, and musl mapped a small group for many (and
// unmapped it again), so nearly every page of the JS heap cost a page fault:
// 420 faults and about 40 % of the CPU from exec to accepting. Here the
// heap's pages come in a few system calls. Blocks of more than 32 KiB
// (header included) go to malloc.
//
// Loop thread only, as QuickJS itself. A freed block stays on its class's
// list (chunks are never unmapped): the heap keeps its high-water mark, as
// QuickJS's arenas mostly do anyway. The ASan build keeps malloc for every
// block so the sanitizer sees each one.
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ugate.h"

// test/native/jsheap-test.c defines UG_JSHEAP_UNDER_ASAN: the allocator's
// own test runs sanitized.
#if defined(__SANITIZE_ADDRESS__) && !defined(UG_JSHEAP_UNDER_ASAN)
const JSMallocFunctions *ug_jsheap(void) {
  return NULL;
}
#else

#define CHUNK (64 * 1024)
#define HDR 8u           // before every block: its class, or BIG
#define BIG 0xffffffffu  // a malloc'd block
#define NCLASS 64

// Block sizes, header included: multiples of 16 growing by about an eighth up
// to 4 KiB (QuickJS's arena is a hair below it), then a quarter up to 32 KiB.
static uint32_t class_size[NCLASS];
static int nclass;
static void *free_list[NCLASS];
static uint8_t *cur, *end;  // the chunk being carved

static void classes_init(void) {
  uint32_t s = 32;
  while (nclass < NCLASS - 1 && s < 32768) {
    class_size[nclass++] = s;
    uint32_t step = s < 4096 ? s / 8 : s / 4;
    s = (s + (step < 16 ? 16 : step) + 15) & ~15u;
  }
  class_size[nclass++] = 32768;  // the last step is shorter: the classes end at 32 KiB
  // QuickJS's arena: JS_ARENA_SIZE (4096) of payload plus our header would
  // land in the 4512 class and waste 400 bytes each: make that class fit it.
  for (int i = 0; i < nclass; i++)
    if (class_size[i] >= 4096) {
      class_size[i] = 4096 + HDR;
      break;
    }
}

static int class_of(size_t n) {  // n includes the header; -1: too big
  int lo = 0, hi = nclass;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (class_size[mid] < n)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < nclass ? lo : -1;
}

static void *heap_malloc(void *opaque, size_t size) {
  (void)opaque;
  if (size > SIZE_MAX - HDR) return NULL;
  int c = class_of(size + HDR);
  uint8_t *b;
  if (c < 0) {
    if (!(b = malloc(size + HDR))) return NULL;
    *(uint32_t *)b = BIG;
    return b + HDR;
  }
  if (free_list[c]) {
    b = (uint8_t *)free_list[c] - HDR;
    free_list[c] = *(void **)free_list[c];
  } else {
    if ((size_t)(end - cur) < class_size[c]) {
      // The old chunk's rest (smaller than this block) stays unused.
      void *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (m == MAP_FAILED) return NULL;
      cur = m;
      end = cur + CHUNK;
    }
    b = cur;
    cur += class_size[c];
  }
  *(uint32_t *)b = (uint32_t)c;
  return b + HDR;
}

static void heap_free(void *opaque, void *p) {
  (void)opaque;
  if (!p) return;
  uint8_t *b = (uint8_t *)p - HDR;
  uint32_t c = *(uint32_t *)b;
  if (c == BIG) {
    free(b);
    return;
  }
  *(void **)p = free_list[c];
  free_list[c] = p;
}

static size_t heap_usable_size(const void *p) {
  if (!p) return 0;
  const uint8_t *b = (const uint8_t *)p - HDR;
  uint32_t c = *(const uint32_t *)b;
  return c == BIG ? malloc_usable_size((void *)b) - HDR : class_size[c] - HDR;
}

static void *heap_calloc(void *opaque, size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return NULL;
  void *p = heap_malloc(opaque, count * size);
  if (p) memset(p, 0, count * size);
  return p;
}

static void *heap_realloc(void *opaque, void *p, size_t size) {
  if (!p) return heap_malloc(opaque, size);
  if (size == 0) {
    heap_free(opaque, p);
    return NULL;
  }
  size_t have = heap_usable_size(p);
  uint8_t *b = (uint8_t *)p - HDR;
  if (*(uint32_t *)b == BIG && class_of(size + HDR) < 0) {
    if (size > SIZE_MAX - HDR || !(b = realloc(b, size + HDR))) return NULL;
    return b + HDR;
  }
  if (size <= have && size > have / 2) return p;
  void *q = heap_malloc(opaque, size);
  if (!q) return NULL;
  memcpy(q, p, size < have ? size : have);
  heap_free(opaque, p);
  return q;
}

static const JSMallocFunctions heap = {heap_calloc, heap_malloc, heap_free, heap_realloc,
                                       heap_usable_size};

const JSMallocFunctions *ug_jsheap(void) {
  if (nclass == 0) classes_init();
  return &heap;
}
#endif
