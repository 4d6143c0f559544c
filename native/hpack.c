// HPACK decoder and literal encoder (see hpack.h).
#include "hpack.h"

#include <stdlib.h>
#include <string.h>

// ---- Huffman code (RFC 7541 Appendix B) -----------------------------------------
// The code is canonical: sorted by length then symbol, each code is the
// previous one plus 1 (shifted left when the length grows). So the whole table
// is how many codes each length has, and the symbols in code order; EOS is
// the last 30-bit code.
static const uint8_t huff_count[31] = {
    [5] = 10,  [6] = 26,  [7] = 32, [8] = 6,   [10] = 5,  [11] = 3,  [12] = 2,
    [13] = 6,  [14] = 2,  [15] = 3, [19] = 3,  [20] = 8,  [21] = 13, [22] = 26,
    [23] = 29, [24] = 12, [25] = 4, [26] = 15, [27] = 19, [28] = 29, [30] = 4,
};
#define HUFF_EOS 256
static const uint8_t huff_sym[256] = {
    48,  49,  50,  97,  99,  101, 105, 111, 115, 116, 32,  37,  45,  46,  47,  51,  52,  53,  54,
    55,  56,  57,  61,  65,  95,  98,  100, 102, 103, 104, 108, 109, 110, 112, 114, 117, 58,  66,
    67,  68,  69,  70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,  81,  82,  83,  84,  85,
    86,  87,  89,  106, 107, 113, 118, 119, 120, 121, 122, 38,  42,  44,  59,  88,  90,  33,  34,
    40,  41,  63,  39,  43,  124, 35,  62,  0,   36,  64,  91,  93,  126, 94,  125, 60,  96,  123,
    92,  195, 208, 128, 130, 131, 162, 184, 194, 224, 226, 153, 161, 167, 172, 176, 177, 179, 209,
    216, 217, 227, 229, 230, 129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173,
    178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233, 1,   135, 137, 138, 139, 140, 141,
    143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182, 183, 188, 191,
    197, 231, 239, 9,   142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237, 199, 207, 234, 235,
    192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255, 203, 204, 211, 212,
    214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252, 253, 254, 2,   3,   4,   5,
    6,   7,   8,   11,  12,  14,  15,  16,  17,  18,  19,  20,  21,  23,  24,  25,  26,  27,  28,
    29,  30,  31,  127, 220, 249, 10,  13,  22,
};

long hpack_huffman_decode(const uint8_t *in, size_t len, char *out, size_t cap) {
  // out == NULL: validate and count only.
  size_t n = 0;
  uint32_t code = 0, first = 0, base = 0;
  int bits = 0;  // length of the partial code in `code`
  for (size_t i = 0; i < len; i++) {
    for (int b = 7; b >= 0; b--) {
      code = code << 1 | ((in[i] >> b) & 1);
      uint32_t count = huff_count[++bits];
      if (code - first < count) {
        uint32_t sym = base + code - first;
        if (sym == HUFF_EOS) return HPACK_HUFF_INVALID;
        if (out) {
          if (n == cap) return HPACK_HUFF_ROOM;
          out[n] = (char)huff_sym[sym];
        }
        n++;
        code = first = base = 0;
        bits = 0;
      } else {
        base += count;
        first = (first + count) << 1;
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (bits > 7 || code != (1u << bits) - 1) return HPACK_HUFF_INVALID;
  return (long)n;
}

// ---- static table (RFC 7541 Appendix A) -------------------------------------------
static const char *const static_table[61][2] = {
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
};
#define STATIC_COUNT 61

// ---- dynamic table ------------------------------------------------------------------
struct hpack_entry {
  uint32_t name_len, value_len;
  char bytes[];  // name, then value
};
#define ENTRY_OVERHEAD 32  // RFC 7541 §4.1

bool hpack_dec_init(struct hpack_dec *d) {
  // Every entry costs at least 32 bytes: this many slots can never overflow.
  *d = (struct hpack_dec){.slots = HPACK_TABLE_MAX / ENTRY_OVERHEAD, .max_size = HPACK_TABLE_MAX};
  d->ring = calloc(d->slots, sizeof *d->ring);
  return d->ring != NULL;
}

static void evict_oldest(struct hpack_dec *d) {
  struct hpack_entry **slot = &d->ring[(d->first + d->count - 1) % d->slots];
  d->size -= (*slot)->name_len + (*slot)->value_len + ENTRY_OVERHEAD;
  free(*slot);
  *slot = NULL;
  d->count--;
}

static void shrink_to(struct hpack_dec *d, size_t max) {
  while (d->size > max) evict_oldest(d);
}

void hpack_dec_free(struct hpack_dec *d) {
  if (d->ring) shrink_to(d, 0);
  free(d->ring);
  d->ring = NULL;
}

// An entry bigger than the table empties it and is not added (§4.4).
// False when out of memory.
static bool insert(struct hpack_dec *d, const char *name, size_t nl, const char *value, size_t vl) {
  size_t cost = nl + vl + ENTRY_OVERHEAD;
  shrink_to(d, cost > d->max_size ? 0 : d->max_size - cost);
  if (cost > d->max_size) return true;
  struct hpack_entry *e = malloc(sizeof *e + nl + vl);
  if (!e) return false;
  e->name_len = (uint32_t)nl;
  e->value_len = (uint32_t)vl;
  memcpy(e->bytes, name, nl);
  memcpy(e->bytes + nl, value, vl);
  d->first = (d->first + d->slots - 1) % d->slots;
  d->ring[d->first] = e;
  d->count++;
  d->size += cost;
  return true;
}

// ---- primitive types ----------------------------------------------------------------
#define INT_MAX_VALUE (1u << 28)  // far above any table index or string we accept

// An integer with an n-bit prefix (§5.1) at in[*pos]. False when truncated or too large.
static bool read_int(const uint8_t *in, size_t len, size_t *pos, int n, uint32_t *out) {
  if (*pos >= len) return false;
  uint32_t mask = (1u << n) - 1, v = in[(*pos)++] & mask;
  if (v < mask) {
    *out = v;
    return true;
  }
  for (int shift = 0; *pos < len; shift += 7) {
    uint8_t b = in[(*pos)++];
    if (shift > 21) return false;
    v += (uint32_t)(b & 0x7f) << shift;
    if (v > INT_MAX_VALUE) return false;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Where decoded strings go: the caller's buffer. Once the list is over its
// limit nothing more is reported and the buffer is scratch space, reused by
// each field, so that entries for the table are still decoded.
struct out {
  char *buf;
  size_t size, used;
  size_t list;  // RFC 9113 §6.5.2 size of the fields so far
  bool over;
};

// A string literal (§5.2) into o. *s is NULL when it does not fit even an
// empty buffer (so it is too big for the table). False when malformed.
static bool read_string(const uint8_t *in, size_t len, size_t *pos, struct out *o, char **s,
                        size_t *slen) {
  if (*pos >= len) return false;
  bool huff = in[*pos] & 0x80;
  uint32_t n;
  if (!read_int(in, len, pos, 7, &n) || n > len - *pos) return false;
  const uint8_t *p = in + *pos;
  *pos += n;
  char *dst = o->buf + o->used;
  size_t room = o->size - o->used;
  long r = n;
  if (huff) {
    r = hpack_huffman_decode(p, n, dst, room);
    if (r == HPACK_HUFF_ROOM) r = hpack_huffman_decode(p, n, NULL, 0);
    if (r < 0) return false;
  } else if (n <= room) {
    memcpy(dst, p, n);
  }
  *slen = (size_t)r;
  if ((size_t)r > room) {
    *s = NULL;
    return true;
  }
  *s = dst;
  o->used += r;
  return true;
}

// An entry of the static (1..61) or dynamic (62..) table.
static bool lookup(const struct hpack_dec *d, uint32_t index, const char **name, size_t *nl,
                   const char **value, size_t *vl) {
  if (index == 0) return false;
  if (index <= STATIC_COUNT) {
    *name = static_table[index - 1][0];
    *value = static_table[index - 1][1];
    *nl = strlen(*name);
    *vl = strlen(*value);
    return true;
  }
  index -= STATIC_COUNT + 1;
  if (index >= d->count) return false;
  const struct hpack_entry *e = d->ring[(d->first + index) % d->slots];
  *name = e->bytes;
  *nl = e->name_len;
  *value = e->bytes + e->name_len;
  *vl = e->value_len;
  return true;
}

// Copy a table string into o (table entries may be evicted before the caller sees them).
static const char *keep(struct out *o, const char *s, size_t n) {
  if (n > o->size - o->used) return NULL;
  char *dst = o->buf + o->used;
  memcpy(dst, s, n);
  o->used += n;
  return dst;
}

int hpack_decode(struct hpack_dec *d, const uint8_t *in, size_t len, char *buf, size_t buf_size,
                 hpack_field_fn *fn, void *ctx) {
  struct out o = {.buf = buf, .size = buf_size};
  size_t pos = 0;
  bool fields = false;  // a field was seen: size updates may only come first
  while (pos < len) {
    uint8_t b = in[pos];
    uint32_t index;
    if ((b & 0xe0) == 0x20) {  // dynamic table size update (§6.3)
      if (fields || !read_int(in, len, &pos, 5, &index) || index > HPACK_TABLE_MAX)
        return HPACK_ERROR;
      d->max_size = index;
      shrink_to(d, index);
      continue;
    }
    fields = true;
    if (o.over) o.used = 0;
    const char *name, *value;
    size_t nl, vl, start = pos;
    bool indexing = false;
    for (;;) {
      if (b & 0x80) {  // indexed field (§6.1)
        if (!read_int(in, len, &pos, 7, &index) || !lookup(d, index, &name, &nl, &value, &vl))
          return HPACK_ERROR;
        name = keep(&o, name, nl);
        value = keep(&o, value, vl);
      } else {  // literal (§6.2): with incremental indexing (01), without (0000), never (0001)
        indexing = (b & 0xc0) == 0x40;
        if (!read_int(in, len, &pos, indexing ? 6 : 4, &index)) return HPACK_ERROR;
        char *s;
        if (index) {
          const char *tv;
          size_t tvl;
          if (!lookup(d, index, &name, &nl, &tv, &tvl)) return HPACK_ERROR;
          name = keep(&o, name, nl);
        } else {
          if (!read_string(in, len, &pos, &o, &s, &nl)) return HPACK_ERROR;
          name = s;
        }
        if (!read_string(in, len, &pos, &o, &s, &vl)) return HPACK_ERROR;
        value = s;
      }
      if ((name && value) || o.over) break;
      // It did not fit after the fields before it: over the limit, so the whole
      // buffer is scratch now; decode the field again from its start.
      o.over = true;
      o.used = 0;
      pos = start;
    }
    if (indexing) {
      if (!name || !value)
        shrink_to(d, 0);  // longer than the buffer: too big for the table
      else if (!insert(d, name, nl, value, vl))
        return HPACK_ERROR;
    }
    o.list += nl + vl + ENTRY_OVERHEAD;
    if (o.list > buf_size || !name || !value) o.over = true;
    if (!o.over) fn(ctx, name, nl, value, vl);
  }
  return o.over ? HPACK_TOO_BIG : HPACK_OK;
}

// ---- encoder ----------------------------------------------------------------------
// An integer with an n-bit prefix; `first` holds the pattern bits above the prefix.
static size_t write_int(uint8_t *out, size_t cap, int n, uint8_t first, size_t v) {
  size_t mask = (1u << n) - 1, i = 0;
  if (cap == 0) return 0;
  if (v < mask) {
    out[0] = first | (uint8_t)v;
    return 1;
  }
  out[i++] = first | (uint8_t)mask;
  for (v -= mask; v >= 0x80; v >>= 7) {
    if (i == cap) return 0;
    out[i++] = (uint8_t)(v | 0x80);
  }
  if (i == cap) return 0;
  out[i++] = (uint8_t)v;
  return i;
}

static size_t write_string(uint8_t *out, size_t cap, const char *s, size_t n) {
  size_t k = write_int(out, cap, 7, 0, n);
  if (k == 0 || n > cap - k) return 0;
  memcpy(out + k, s, n);
  return k + n;
}

size_t hpack_encode(uint8_t *out, size_t cap, const char *name, size_t name_len, const char *value,
                    size_t value_len, bool sensitive) {
  size_t name_index = 0;
  for (size_t i = 0; i < STATIC_COUNT; i++) {
    const char *n = static_table[i][0], *v = static_table[i][1];
    if (strlen(n) != name_len || memcmp(n, name, name_len) != 0) continue;
    if (!sensitive && strlen(v) == value_len && memcmp(v, value, value_len) == 0)
      return write_int(out, cap, 7, 0x80, i + 1);
    if (!name_index) name_index = i + 1;
  }
  size_t k = write_int(out, cap, 4, sensitive ? 0x10 : 0x00, name_index);
  if (k == 0) return 0;
  if (!name_index) {
    size_t m = write_string(out + k, cap - k, name, name_len);
    if (m == 0) return 0;
    k += m;
  }
  size_t m = write_string(out + k, cap - k, value, value_len);
  return m == 0 ? 0 : k + m;
}
