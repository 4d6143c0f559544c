// HPACK (RFC 7541), the header compression of HTTP/2: a decoder with Huffman
// decoding and the dynamic table, and an encoder that only sends literals
// (never indexed into the peer's table), which every decoder must accept.
// No I/O, no allocation while decoding; one decoder per connection.
#ifndef UGATE_HPACK_H
#define UGATE_HPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Our SETTINGS_HEADER_TABLE_SIZE: the most the peer's encoder may use (the default).
#define HPACK_TABLE_MAX 4096

struct hpack_entry;
struct hpack_dec {
  struct hpack_entry **ring;  // the dynamic table, newest at `first`
  uint32_t slots, first, count;
  size_t size;      // RFC 7541 §4.1 size of the entries held
  size_t max_size;  // the current limit, lowered or raised by size updates
};

// What hpack_decode returns.
enum {
  HPACK_OK = 0,
  HPACK_ERROR = -1,    // malformed block: a COMPRESSION_ERROR of the connection
  HPACK_TOO_BIG = -2,  // well formed, but the decoded list is over the caller's
                       // limit; the table is still in sync (a stream-level refusal)
};

// Called for each decoded field, in order. name and value point into the
// caller's buffer and stay valid until the next hpack_decode call.
typedef void hpack_field_fn(void *ctx, const char *name, size_t name_len, const char *value,
                            size_t value_len);

// False when out of memory.
bool hpack_dec_init(struct hpack_dec *d);
void hpack_dec_free(struct hpack_dec *d);
// Decode one complete header block. Names and values are copied into buf
// (buf_size bytes, at least HPACK_TABLE_MAX); once the RFC 9113 list size (name + value + 32 per
// field) would pass buf_size, fields are no longer reported, the rest of the block is still decoded
// and HPACK_TOO_BIG is returned. Returns HPACK_OK, HPACK_ERROR or HPACK_TOO_BIG.
int hpack_decode(struct hpack_dec *d, const uint8_t *in, size_t len, char *buf, size_t buf_size,
                 hpack_field_fn *fn, void *ctx);

// Append one field to out: a static-table index when name and value are both
// there, else a literal without indexing (never indexed when `sensitive`) that
// names the static entry when it has the name. Returns the bytes written, or 0
// when cap is too small.
size_t hpack_encode(uint8_t *out, size_t cap, const char *name, size_t name_len, const char *value,
                    size_t value_len, bool sensitive);

// Huffman decoding of one string (RFC 7541 §5.2) into out (cap bytes; with
// out NULL the string is only checked and measured). Returns the decoded
// length, HPACK_HUFF_INVALID (EOS inside, padding longer than 7 bits or not
// all ones) or HPACK_HUFF_ROOM (valid so far, but longer than cap).
enum { HPACK_HUFF_INVALID = -1, HPACK_HUFF_ROOM = -2 };
long hpack_huffman_decode(const uint8_t *in, size_t len, char *out, size_t cap);

#endif
