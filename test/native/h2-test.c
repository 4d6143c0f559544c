// Tests of native/hpack.c and native/h2.c without any I/O: RFC 7541 Appendix C,
// engine pairs talking through memory, every error path, and a fixed-seed fuzz.
// Built with ASan/UBSan and run by test/unit/h2.test.ts; prints one
// "ok N - what" or "not ok N - what: why" line per check.
#include "../../native/h2.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;

static void check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s %d - ", ok ? "ok" : "not ok", ++checks);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!ok) failures++;
}

static size_t unhex(const char *hex, uint8_t *out) {
  size_t n = 0;
  int half = -1;
  for (; *hex; hex++) {
    int v = *hex >= 'a' ? *hex - 'a' + 10 : *hex >= '0' && *hex <= '9' ? *hex - '0' : -1;
    if (v < 0) continue;
    if (half < 0)
      half = v;
    else
      out[n++] = half << 4 | v, half = -1;
  }
  return n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {  // xorshift64*
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

// ---- HPACK ---------------------------------------------------------------------------
struct fields {
  int n;
  char text[4096];  // "name: value\n" lines
};

static void collect(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
  struct fields *f = ctx;
  size_t used = strlen(f->text);
  snprintf(f->text + used, sizeof f->text - used, "%.*s: %.*s\n", (int)nl, name, (int)vl, value);
  f->n++;
}

static char hbuf[64 << 10];

static int decode_hex(struct hpack_dec *d, const char *hex, struct fields *f) {
  uint8_t in[1024];
  size_t n = unhex(hex, in);
  memset(f, 0, sizeof *f);
  return hpack_decode(d, in, n, hbuf, sizeof hbuf, collect, f);
}

static void test_huffman(void) {
  uint8_t in[64];
  char out[64];
  size_t n = unhex("f1e3 c2e5 f23a 6ba0 ab90 f4ff", in);
  long r = hpack_huffman_decode(in, n, out, sizeof out);
  check(r == 15 && memcmp(out, "www.example.com", 15) == 0, "huffman: C.4.1 www.example.com");
  n = unhex("a8eb 1064 9cbf", in);
  r = hpack_huffman_decode(in, n, out, sizeof out);
  check(r == 8 && memcmp(out, "no-cache", 8) == 0, "huffman: C.4.2 no-cache");
  check(hpack_huffman_decode(in, n, out, 3) == HPACK_HUFF_ROOM, "huffman: too long for the room");
  check(hpack_huffman_decode(in, n, NULL, 0) == 8, "huffman: measuring only");
  // 'a' (00011) then padding 000: padding must be ones.
  in[0] = 0x18;
  check(hpack_huffman_decode(in, 1, out, 64) == HPACK_HUFF_INVALID,
        "huffman: zero padding refused");
  // 'a' + 3 ones, then a whole byte of ones: 11 bits of padding.
  in[0] = 0x1f, in[1] = 0xff;
  check(hpack_huffman_decode(in, 2, out, 64) == HPACK_HUFF_INVALID,
        "huffman: padding over 7 bits refused");
  // EOS (30 ones) then 2 ones of padding.
  memset(in, 0xff, 4);
  check(hpack_huffman_decode(in, 4, out, 64) == HPACK_HUFF_INVALID, "huffman: EOS refused");
  check(hpack_huffman_decode(in, 0, out, 64) == 0, "huffman: empty string");
  // Every byte value survives a round trip through the code (encoded here bit by bit
  // from the decoder's own view: each 1-symbol string must decode to itself).
  int good = 0;
  for (int sym = 0; sym < 256; sym++) {
    // Find the code by search: try all codes of each length for the one that decodes to sym.
    for (int len = 5, found = 0; len <= 30 && !found; len++) {
      for (uint32_t code = 0; code < (1u << len) && !found && len <= 13; code++) {
        uint8_t b[4] = {0};
        uint64_t v = ((uint64_t)code << (32 - len)) | ((1ull << (32 - len)) - 1);
        for (int i = 0; i < 4; i++) b[i] = v >> (24 - 8 * i);
        int bytes = (len + 7) / 8;
        char o[8];
        if (hpack_huffman_decode(b, bytes, o, sizeof o) == 1 && (uint8_t)o[0] == sym) found = 1;
      }
      if (found) good++;
    }
  }
  // Codes up to 13 bits cover the 74 printable symbols the RFC gives short codes.
  check(good >= 74, "huffman: %d symbols with codes up to 13 bits decode alone", good);
}

static void test_hpack_rfc(void) {
  struct hpack_dec d;
  struct fields f;
  // C.2: one field each, fresh tables.
  hpack_dec_init(&d);
  int r = decode_hex(&d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", &f);
  check(r == HPACK_OK && !strcmp(f.text, "custom-key: custom-header\n") && d.size == 55 &&
            d.count == 1,
        "hpack C.2.1 literal with indexing");
  hpack_dec_free(&d);
  hpack_dec_init(&d);
  r = decode_hex(&d, "040c 2f73 616d 706c 652f 7061 7468", &f);
  check(r == HPACK_OK && !strcmp(f.text, ":path: /sample/path\n") && d.count == 0,
        "hpack C.2.2 literal without indexing");
  r = decode_hex(&d, "1008 7061 7373 776f 7264 0673 6563 7265 74", &f);
  check(r == HPACK_OK && !strcmp(f.text, "password: secret\n") && d.count == 0,
        "hpack C.2.3 literal never indexed");
  r = decode_hex(&d, "82", &f);
  check(r == HPACK_OK && !strcmp(f.text, ":method: GET\n"), "hpack C.2.4 indexed field");
  hpack_dec_free(&d);

  static const char *req1 = ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n";
  static const char *req2 =
      ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\ncache-control: "
      "no-cache\n";
  static const char *req3 =
      ":method: GET\n:scheme: https\n:path: /index.html\n:authority: www.example.com\ncustom-key: "
      "custom-value\n";
  static const char *const req_hex[2][3] = {
      {"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", "8286 84be 5808 6e6f 2d63 6163 6865",
       "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"},
      {"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", "8286 84be 5886 a8eb 1064 9cbf",
       "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"},
  };
  const char *req_want[3] = {req1, req2, req3};
  size_t req_size[3] = {57, 110, 164};
  for (int h = 0; h < 2; h++) {
    hpack_dec_init(&d);
    for (int i = 0; i < 3; i++) {
      r = decode_hex(&d, req_hex[h][i], &f);
      check(r == HPACK_OK && !strcmp(f.text, req_want[i]) && d.size == req_size[i] &&
                d.count == (uint32_t)i + 1,
            "hpack C.%d.%d request %s Huffman (table %zu bytes)", 3 + h, i + 1,
            h ? "with" : "without", d.size);
    }
    hpack_dec_free(&d);
  }

  static const char *resp1 =
      ":status: 302\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\nlocation: "
      "https://www.example.com\n";
  static const char *resp2 =
      ":status: 307\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\nlocation: "
      "https://www.example.com\n";
  static const char *resp3 =
      ":status: 200\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:22 GMT\nlocation: "
      "https://www.example.com\ncontent-encoding: gzip\nset-cookie: "
      "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1\n";
  static const char *const resp_hex[2][3] = {
      {"4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a "
       "3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
       "4803 3330 37c1 c0bf",
       "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 "
       "677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 "
       "553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31"},
      {"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e "
       "919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
       "4883 640e ffc1 c0bf",
       "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 "
       "821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed "
       "4ee5 b106 3d50 07"},
  };
  const char *resp_want[3] = {resp1, resp2, resp3};
  size_t resp_size[3] = {222, 222, 215};
  uint32_t resp_count[3] = {4, 4, 3};
  for (int h = 0; h < 2; h++) {
    hpack_dec_init(&d);
    d.max_size = 256;  // the examples' SETTINGS_HEADER_TABLE_SIZE
    for (int i = 0; i < 3; i++) {
      r = decode_hex(&d, resp_hex[h][i], &f);
      check(r == HPACK_OK && !strcmp(f.text, resp_want[i]) && d.size == resp_size[i] &&
                d.count == resp_count[i],
            "hpack C.%d.%d response %s Huffman, evictions (table %zu bytes, %u entries)", 5 + h,
            i + 1, h ? "with" : "without", d.size, d.count);
    }
    hpack_dec_free(&d);
  }
}

static void test_hpack_encode(void) {
  uint8_t out[256], want[64];
  size_t n = hpack_encode(out, sizeof out, ":path", 5, "/sample/path", 12, false);
  size_t w = unhex("040c 2f73 616d 706c 652f 7061 7468", want);
  check(n == w && !memcmp(out, want, n), "hpack encode: C.2.2 bytes");
  n = hpack_encode(out, sizeof out, "password", 8, "secret", 6, true);
  w = unhex("1008 7061 7373 776f 7264 0673 6563 7265 74", want);
  check(n == w && !memcmp(out, want, n), "hpack encode: C.2.3 never indexed bytes");
  n = hpack_encode(out, sizeof out, ":status", 7, "200", 3, false);
  check(n == 1 && out[0] == 0x88, "hpack encode: :status 200 is static index 8");
  check(hpack_encode(out, 5, "password", 8, "secret", 6, true) == 0, "hpack encode: no room → 0");
  // A long value: a multi-byte length, decoded back.
  static char big[3000];
  memset(big, 'v', sizeof big);
  static uint8_t blk[4096];
  n = hpack_encode(blk, sizeof blk, "baggage", 7, big, sizeof big, false);
  struct hpack_dec d;
  hpack_dec_init(&d);
  struct fields f = {0};
  int r = hpack_decode(&d, blk, n, hbuf, sizeof hbuf, collect, &f);
  check(r == HPACK_OK && f.n == 1 && strlen(f.text) == 7 + 2 + 3000 + 1,
        "hpack encode: 3000-byte value round trip");
  hpack_dec_free(&d);
}

static void test_hpack_errors(void) {
  static const struct {
    const char *hex, *what;
  } bad[] = {
      {"80", "index 0"},
      {"be", "index 62 with an empty dynamic table"},
      {"ff80 8080 8080 01", "integer overflow"},
      {"ff", "truncated integer"},
      {"0085 6162", "string longer than the block"},
      {"00", "literal without its name"},
      {"0001 61", "literal without its value"},
      {"3fe2 1f", "size update above 4096"},
      {"8220", "size update after a field"},
      {"0081 ff81 61", "Huffman name that is only padding of 8 bits"},
      {"0001 6181 00", "Huffman value with zero padding"},
      {"40ff 8080 8080 0f", "literal name length overflow"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct hpack_dec d;
    struct fields f;
    hpack_dec_init(&d);
    int r = decode_hex(&d, bad[i].hex, &f);
    check(r == HPACK_ERROR, "hpack error: %s → COMPRESSION_ERROR", bad[i].what);
    hpack_dec_free(&d);
  }
  // Size updates: to 0 empties the table, several at the start are fine.
  struct hpack_dec d;
  struct fields f;
  hpack_dec_init(&d);
  decode_hex(&d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", &f);
  int r = decode_hex(&d, "2020 3fe1 1f82", &f);
  check(r == HPACK_OK && d.count == 0 && d.max_size == 4096 && f.n == 1,
        "hpack: size updates 0 then 4096 at the start empty the table");
  // Over the list limit: not reported, but the table still follows.
  uint8_t blk[8192];
  size_t n = 0;
  static char v[3000];
  memset(v, 'x', sizeof v);
  n = hpack_encode(blk, sizeof blk, "j", 1, v, sizeof v, false);
  size_t k = hpack_encode(blk + n, sizeof blk - n, "k", 1, v, sizeof v, false);
  blk[n] = 0x40;  // the second one with incremental indexing
  n += k;
  memset(&f, 0, sizeof f);
  char small[4096];
  r = hpack_decode(&d, blk, n, small, sizeof small, collect, &f);
  check(r == HPACK_TOO_BIG && f.n == 1 && d.count == 1 && d.size == 3033,
        "hpack: a list over the limit is HPACK_TOO_BIG and the entry still enters the table");
  hpack_dec_free(&d);
}

// ---- engine pairs ----------------------------------------------------------------------
#define MAXEV 1024
struct ev {
  char type;  // q request, r response, d data, e end, c closed, w writable, g goaway, p pong
  uint32_t id, code;
  bool remote;
  int status;
  uint64_t n;
  char text[160];
};
struct side {
  h2_conn *c;
  struct ev ev[MAXEV];
  int nev;
  uint64_t data_bytes;
  bool auto_consume;
  bool respond;  // server: answer every request with 200
};

static struct ev *add_ev(struct side *s, char type, uint32_t id) {
  struct ev *e = &s->ev[s->nev < MAXEV ? s->nev++ : MAXEV - 1];
  memset(e, 0, sizeof *e);
  e->type = type;
  e->id = id;
  return e;
}

static void headers_text(struct ev *e, const struct h2_header *h, int n) {
  size_t used = strlen(e->text);
  for (int i = 0; i < n; i++) {
    used += snprintf(e->text + used, sizeof e->text - used, "%.*s=%.*s;", (int)h[i].name_len,
                     h[i].name, (int)h[i].value_len, h[i].value);
    if (used >= sizeof e->text) break;
  }
}

static void ev_request(void *ctx, uint32_t id, const char *a, size_t al, const struct h2_header *h,
                       int n) {
  struct side *s = ctx;
  struct ev *e = add_ev(s, 'q', id);
  snprintf(e->text, sizeof e->text, "%.*s|", (int)al, a);
  headers_text(e, h, n);
  if (s->respond) h2_respond(s->c, id, 200, NULL, 0);
}
static void ev_response(void *ctx, uint32_t id, int status, const struct h2_header *h, int n) {
  struct ev *e = add_ev(ctx, 'r', id);
  e->status = status;
  headers_text(e, h, n);
}
static void ev_data(void *ctx, uint32_t id, const uint8_t *p, size_t n) {
  struct side *s = ctx;
  struct ev *e = add_ev(s, 'd', id);
  e->n = n;
  snprintf(e->text, sizeof e->text, "%.*s", (int)(n < 64 ? n : 64), (const char *)p);
  s->data_bytes += n;
  if (s->auto_consume) h2_consumed(s->c, id, n);
}
static void ev_end(void *ctx, uint32_t id) {
  add_ev(ctx, 'e', id);
}
static void ev_closed(void *ctx, uint32_t id, uint32_t code, bool remote) {
  struct ev *e = add_ev(ctx, 'c', id);
  e->code = code;
  e->remote = remote;
}
static void ev_writable(void *ctx, uint32_t id) {
  add_ev(ctx, 'w', id);
}
static void ev_goaway(void *ctx, uint32_t last, uint32_t code) {
  struct ev *e = add_ev(ctx, 'g', last);
  e->code = code;
}
static void ev_pong(void *ctx, uint64_t payload) {
  add_ev(ctx, 'p', 0)->n = payload;
}
static const struct h2_events events = {ev_request, ev_response, ev_data,   ev_end,
                                        ev_closed,  ev_writable, ev_goaway, ev_pong};

static struct ev *find_ev(struct side *s, char type, uint32_t id) {
  for (int i = 0; i < s->nev; i++)
    if (s->ev[i].type == type && (id == 0 || s->ev[i].id == id)) return &s->ev[i];
  return NULL;
}

static void side_init(struct side *s, bool server, const struct h2_config *cfg) {
  memset(s, 0, sizeof *s);
  s->c = h2_new(server, cfg, &events, s);
  s->auto_consume = true;
}

// Move bytes both ways until neither side has anything to send. Returns the
// first h2_recv error (0: none).
static int pump(struct side *a, struct side *b) {
  int err = 0;
  for (int moved = 1; moved;) {
    moved = 0;
    struct side *from[2] = {a, b}, *to[2] = {b, a};
    for (int k = 0; k < 2; k++) {
      size_t len;
      const uint8_t *p = h2_output(from[k]->c, &len);
      if (len == 0) continue;
      uint8_t *copy = malloc(len);
      memcpy(copy, p, len);
      h2_output_done(from[k]->c, len);
      int r = h2_recv(to[k]->c, copy, len);
      free(copy);
      if (r && !err) err = r;
      moved = 1;
      if (r) return err;
    }
  }
  return err;
}

static void test_pair_basic(void) {
  struct side cl, sv;
  side_init(&cl, false, NULL);
  side_init(&sv, true, NULL);
  check(pump(&cl, &sv) == 0, "pair: preface and SETTINGS exchanged without error");
  struct h2_header hs[] = {
      {"baggage", "k8s.cluster.name=c1,service.name=s", 7, 34},
      {"forwarded", "for=\"10.0.0.1\"", 9, 14},
      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 11, 55},
  };
  int64_t id = h2_open(cl.c, "10.1.2.3:8080", hs, 3);
  check(id == 1, "pair: first client stream is 1");
  pump(&cl, &sv);
  struct ev *q = find_ev(&sv, 'q', 1);
  check(
      q && !strcmp(q->text,
                   "10.1.2.3:8080|baggage=k8s.cluster.name=c1,service.name=s;forwarded=for=\"10.0."
                   "0.1\";traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01;"),
      "pair: server got CONNECT authority and baggage/forwarded/traceparent (%s)",
      q ? q->text : "-");
  check(h2_send(sv.c, 1, (const uint8_t *)"x", 1, false) == H2_E_STATE,
        "pair: server cannot send data before its response");
  struct h2_header rh[] = {{"server", "ugate", 6, 5}};
  check(h2_respond(sv.c, 1, 200, rh, 1) == 0, "pair: server responds 200");
  check(h2_respond(sv.c, 1, 200, NULL, 0) == H2_E_STATE, "pair: a second response is refused");
  pump(&cl, &sv);
  struct ev *r = find_ev(&cl, 'r', 1);
  check(r && r->status == 200 && !strcmp(r->text, "server=ugate;"), "pair: client got 200");
  check(h2_send(cl.c, 1, (const uint8_t *)"hello", 5, false) == 5, "pair: client sends 5 bytes");
  check(h2_send(sv.c, 1, (const uint8_t *)"world!", 6, true) == 6,
        "pair: server sends 6 bytes and END_STREAM");
  pump(&cl, &sv);
  struct ev *d1 = find_ev(&sv, 'd', 1), *d2 = find_ev(&cl, 'd', 1);
  check(d1 && d1->n == 5 && !strcmp(d1->text, "hello"), "pair: server got hello");
  check(d2 && d2->n == 6 && !strcmp(d2->text, "world!"), "pair: client got world!");
  check(find_ev(&cl, 'e', 1) && !find_ev(&sv, 'e', 1), "pair: half-close seen by the client only");
  check(h2_send(sv.c, 1, (const uint8_t *)"x", 1, false) == H2_E_STATE,
        "pair: no data after our END_STREAM");
  check(h2_send(cl.c, 1, (const uint8_t *)"more", 4, false) == 4,
        "pair: client still sends on its half of the stream");
  check(h2_send(cl.c, 1, NULL, 0, true) == 0, "pair: client half-closes with an empty DATA");
  check(h2_stream_count(cl.c) == 0, "pair: client stream gone after both ends ended");
  pump(&cl, &sv);
  struct ev *c = find_ev(&sv, 'c', 1);
  check(find_ev(&sv, 'e', 1) && c && c->code == 0 && c->remote && h2_stream_count(sv.c) == 0,
        "pair: server saw END_STREAM then a normal close");
  check(sv.data_bytes == 9, "pair: server got 9 bytes in all");
  // PING, RTT from the owner's clock.
  h2_ping(cl.c, 123456789);
  check(h2_ping_pending(cl.c) == 123456789, "ping: pending until acknowledged");
  pump(&cl, &sv);
  struct ev *p = find_ev(&cl, 'p', 0);
  check(p && p->n == 123456789 && h2_ping_pending(cl.c) == 0, "ping: ACK with the same payload");
  // Resets both ways.
  id = h2_open(cl.c, "a:1", NULL, 0);
  int64_t id2 = h2_open(cl.c, "b:2", NULL, 0);
  check(id == 3 && id2 == 5, "pair: stream ids 3 and 5");
  pump(&cl, &sv);
  h2_respond(sv.c, 3, 200, NULL, 0);
  h2_respond(sv.c, 5, 200, NULL, 0);
  pump(&cl, &sv);
  check(h2_reset(cl.c, 3, H2_CANCEL) == 0 && h2_reset(cl.c, 3, H2_CANCEL) == H2_E_STATE,
        "reset: client resets 3 (once)");
  check(h2_reset(sv.c, 5, H2_CONNECT_ERROR) == 0, "reset: server resets 5");
  check(pump(&cl, &sv) == 0, "reset: the crossing frames are no error");
  struct ev *c3 = find_ev(&sv, 'c', 3), *c5 = find_ev(&cl, 'c', 5);
  check(c3 && c3->code == H2_CANCEL && c3->remote, "reset: server saw CANCEL on 3");
  check(c5 && c5->code == H2_CONNECT_ERROR && c5->remote, "reset: client saw CONNECT_ERROR on 5");
  check(h2_stream_count(cl.c) == 0 && h2_stream_count(sv.c) == 0, "reset: no streams left");
  // A refused tunnel: 503 ends the stream.
  id = h2_open(cl.c, "c:3", NULL, 0);
  pump(&cl, &sv);
  check(h2_respond(sv.c, id, 503, NULL, 0) == 0 && h2_stream_count(sv.c) == 0,
        "refuse: 503 ends the server's stream");
  pump(&cl, &sv);
  r = find_ev(&cl, 'r', id);
  struct ev *e = find_ev(&cl, 'e', id);
  c = find_ev(&cl, 'c', id);
  check(r && r->status == 503 && e && c && c->code == H2_NO_ERROR,
        "refuse: client got 503, END_STREAM and the NO_ERROR reset");
  // user data
  id = h2_open(cl.c, "d:4", NULL, 0);
  int marker;
  check(h2_set_user(cl.c, id, &marker) == 0 && h2_user(cl.c, id) == &marker &&
            h2_user(cl.c, 999) == NULL && h2_set_user(cl.c, 999, &marker) == H2_E_STATE,
        "user data on a stream");
  // GOAWAY from the server: the open stream (7 ≤ last) goes on, new ones refused.
  pump(&cl, &sv);
  h2_goaway(sv.c, H2_NO_ERROR);
  pump(&cl, &sv);
  struct ev *g = find_ev(&cl, 'g', 0);
  check(g && g->id == (uint32_t)id && g->code == 0, "goaway: client got last-stream-id %u",
        g ? g->id : 0);
  check(h2_open(cl.c, "e:5", NULL, 0) == H2_E_BUSY, "goaway: no new stream after GOAWAY");
  check(h2_stream_count(cl.c) == 1, "goaway: the stream below last-stream-id stays");
  h2_free(cl.c);
  h2_free(sv.c);
}

// RFC 9113 §5.1 from the owner's side: which calls each state allows, and when
// the stream leaves the table.
static void test_states(void) {
  struct side cl, sv;
  side_init(&cl, false, NULL);
  side_init(&sv, true, NULL);
  pump(&cl, &sv);
  const uint8_t *x = (const uint8_t *)"x";
  // open → half-closed (local) on the client, (remote) on the server → closed.
  int64_t id = h2_open(cl.c, "s:1", NULL, 0);
  pump(&cl, &sv);
  h2_respond(sv.c, id, 200, NULL, 0);
  check(h2_send(cl.c, id, x, 1, true) == 1 && h2_send(cl.c, id, x, 1, false) == H2_E_STATE &&
            h2_send_room(cl.c, id) == 0,
        "states: client half-closed (local): no more sending");
  pump(&cl, &sv);
  check(find_ev(&sv, 'e', id) && h2_send(sv.c, id, x, 1, false) == 1 && h2_stream_count(sv.c) == 1,
        "states: server half-closed (remote): it still sends");
  check(h2_send(sv.c, id, NULL, 0, true) == 0 && h2_stream_count(sv.c) == 0,
        "states: the server's END_STREAM closes it (no event for the owner's own call)");
  pump(&cl, &sv);
  struct ev *c = find_ev(&cl, 'c', id);
  check(c && c->code == 0 && c->remote && h2_stream_count(cl.c) == 0,
        "states: the client's stream closes on the server's END_STREAM (closed event, NO_ERROR)");
  check(h2_send(cl.c, id, x, 1, false) == H2_E_STATE && h2_reset(cl.c, id, 0) == H2_E_STATE &&
            h2_respond(sv.c, id, 200, NULL, 0) == H2_E_STATE,
        "states: closed: send, reset and respond refused");
  // CONNECT with END_STREAM at once: request then end, the server still answers and sends.
  id = h2_open(cl.c, "s:2", NULL, 0);
  h2_send(cl.c, id, NULL, 0, true);
  pump(&cl, &sv);
  check(find_ev(&sv, 'q', id) && find_ev(&sv, 'e', id) && h2_respond(sv.c, id, 200, NULL, 0) == 0 &&
            h2_send(sv.c, id, x, 1, true) == 1 && h2_stream_count(sv.c) == 0,
        "states: a request half-closed at once is answered, then closed by the response's end");
  pump(&cl, &sv);
  // A reset from the half-closed (remote) state.
  id = h2_open(cl.c, "s:3", NULL, 0);
  h2_send(cl.c, id, NULL, 0, true);
  pump(&cl, &sv);
  h2_respond(sv.c, id, 200, NULL, 0);
  check(h2_reset(sv.c, id, H2_INTERNAL_ERROR) == 0 && h2_stream_count(sv.c) == 0,
        "states: half-closed (remote) stream reset by the server");
  check(pump(&cl, &sv) == 0 && (c = find_ev(&cl, 'c', id)) && c->code == H2_INTERNAL_ERROR,
        "states: the client sees the reset of its half-closed (local) stream");
  // Stream ids only grow, one client stream at a time or many.
  int64_t a = h2_open(cl.c, "s:4", NULL, 0), b = h2_open(cl.c, "s:5", NULL, 0);
  check(a == id + 2 && b == id + 4, "states: new streams take the next odd ids (%lld, %lld)",
        (long long)a, (long long)b);
  h2_free(cl.c);
  h2_free(sv.c);
}

static void test_flow_control(void) {
  struct h2_config sc;
  h2_config_default(&sc, true);
  sc.stream_window = 65535;
  sc.conn_window = 65535 * 2;
  struct side cl, sv;
  side_init(&cl, false, NULL);
  side_init(&sv, true, &sc);
  sv.auto_consume = false;
  sv.respond = true;
  pump(&cl, &sv);
  int64_t id = h2_open(cl.c, "big:1", NULL, 0);
  pump(&cl, &sv);
  static uint8_t buf[1 << 20];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7);
  check(h2_send_room(cl.c, id) == 65535, "flow: client room is the server's 65535 stream window");
  ssize_t n = h2_send(cl.c, id, buf, sizeof buf, true);
  check(n == 65535, "flow: h2_send takes only the window (%zd)", n);
  check(h2_send(cl.c, id, buf, 10, false) == 0, "flow: then nothing until a WINDOW_UPDATE");
  pump(&cl, &sv);
  check(sv.data_bytes == 65535, "flow: server got the window's worth");
  // Consuming less than half a window sends nothing back.
  h2_consumed(sv.c, id, 1000);
  pump(&cl, &sv);
  check(!find_ev(&cl, 'w', (uint32_t)id), "flow: no WINDOW_UPDATE below half a window");
  h2_consumed(sv.c, id, 64535);
  pump(&cl, &sv);
  check(find_ev(&cl, 'w', (uint32_t)id) != NULL && h2_send_room(cl.c, id) == 65535,
        "flow: consuming the window reopens it (writable event)");
  // Move the whole MiB: the connection window (2 × 65535) is the other limit.
  size_t sent = n;
  int rounds = 0;
  while (sent < sizeof buf && rounds < 1000) {
    ssize_t k = h2_send(cl.c, id, buf + sent, sizeof buf - sent, true);
    if (k < 0) break;
    sent += k;
    pump(&cl, &sv);
    h2_consumed(sv.c, id, sv.data_bytes - (sent - k) > 0 ? (size_t)k : 0);
    pump(&cl, &sv);
    rounds++;
  }
  check(sent == sizeof buf && sv.data_bytes == sizeof buf && find_ev(&sv, 'e', (uint32_t)id),
        "flow: 1 MiB through a 64 KiB window in %d rounds, then END_STREAM", rounds);
  // The server's own send side respects the client's 4 MiB window and 16 KiB frames.
  check(h2_send_room(sv.c, id) == 4 << 20,
        "flow: server room is the client's 4 MiB stream window (its connection window is 16 MiB)");
  h2_free(cl.c);
  h2_free(sv.c);
}

static void test_limits(void) {
  struct h2_config sc;
  h2_config_default(&sc, true);
  sc.max_streams = 2;
  struct side cl, sv;
  side_init(&cl, false, NULL);
  side_init(&sv, true, &sc);
  pump(&cl, &sv);
  check(h2_open(cl.c, "a:1", NULL, 0) == 1 && h2_open(cl.c, "a:2", NULL, 0) == 3,
        "limits: two streams open");
  check(h2_open(cl.c, "a:3", NULL, 0) == H2_E_BUSY,
        "limits: the third waits for the server's SETTINGS_MAX_CONCURRENT_STREAMS 2");
  h2_free(cl.c);
  h2_free(sv.c);
  struct h2_config cc;
  h2_config_default(&cc, false);
  check(cc.max_streams == 100 && cc.stream_window == 4 << 20 && cc.conn_window == 16 << 20 &&
            cc.max_frame == 1 << 20 && cc.max_header_list == 64 << 10,
        "limits: ztunnel's defaults (client pool 100, 4 MiB, 16 MiB, 1 MiB, 64 KiB)");
  h2_config_default(&sc, true);
  check(sc.max_streams == 200, "limits: server allows 200 streams");
  side_init(&cl, false, NULL);
  int64_t last = 0;
  for (int i = 0; i < 101; i++) last = h2_open(cl.c, "x:1", NULL, 0);
  check(last == H2_E_BUSY && h2_stream_count(cl.c) == 100, "limits: client pool holds 100 streams");
  h2_free(cl.c);
}

// ---- raw frames against one engine ------------------------------------------------------
static uint8_t raw[20 << 20];  // room for the window-overrun cases
static size_t rawlen;

static void fr(uint32_t len, uint8_t type, uint8_t flags, uint32_t sid, const void *payload,
               size_t plen) {
  uint8_t *p = raw + rawlen;
  p[0] = len >> 16, p[1] = len >> 8, p[2] = len, p[3] = type, p[4] = flags;
  p[5] = sid >> 24, p[6] = sid >> 16, p[7] = sid >> 8, p[8] = sid;
  if (plen) memcpy(p + 9, payload, plen);
  rawlen += 9 + plen;
}
static void fr_auto(uint8_t type, uint8_t flags, uint32_t sid, const void *payload, size_t plen) {
  fr(plen, type, flags, sid, payload, plen);
}

// A header block with pseudo and regular fields given as "name", "value", ... NULL.
static size_t block(uint8_t *out, ...) {
  va_list ap;
  va_start(ap, out);
  size_t n = 0;
  for (const char *nm; (nm = va_arg(ap, const char *));) {
    const char *v = va_arg(ap, const char *);
    n += hpack_encode(out + n, 4096, nm, strlen(nm), v, strlen(v), false);
  }
  va_end(ap);
  return n;
}

static void preface_settings(bool as_client) {
  rawlen = 0;
  if (as_client) {
    memcpy(raw, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    rawlen = 24;
  }
  fr(0, 4, 0, 0, NULL, 0);
}

static void connect_headers(uint32_t sid, uint8_t flags) {
  uint8_t b[256];
  size_t n = block(b, ":method", "CONNECT", ":authority", "h:1", NULL);
  fr_auto(1, flags | 4, sid, b, n);
}

// What an engine's output says: the last GOAWAY code and the RST_STREAM codes.
struct seen {
  int goaway;  // -1: none
  int rst[16];
  uint32_t rst_sid[16];
  int nrst;
  int status;  // the last :status the engine sent (server side), -1: none
  bool frames_ok;
  bool ping_ack;
};

static void read_output(h2_conn *c, struct seen *s) {
  memset(s, 0, sizeof *s);
  s->goaway = -1;
  s->status = -1;
  s->frames_ok = true;
  size_t len;
  const uint8_t *p = h2_output(c, &len);
  size_t i = 0;
  while (i + 9 <= len) {
    uint32_t fl = p[i] << 16 | p[i + 1] << 8 | p[i + 2];
    uint8_t type = p[i + 3];
    uint32_t sid = (p[i + 5] << 24 | p[i + 6] << 16 | p[i + 7] << 8 | p[i + 8]) & 0x7fffffff;
    if (i + 9 + fl > len) break;
    const uint8_t *q = p + i + 9;
    if (type == 7) s->goaway = q[4] << 24 | q[5] << 16 | q[6] << 8 | q[7];
    if (type == 3 && s->nrst < 16) {
      s->rst_sid[s->nrst] = sid;
      s->rst[s->nrst++] = q[0] << 24 | q[1] << 16 | q[2] << 8 | q[3];
    }
    if (type == 1 && fl >= 1 && (q[0] & 0x80)) {  // our encoder: status as one static index
      static const int st[] = {200, 204, 206, 304, 400, 404, 500};
      int k = (q[0] & 0x7f) - 8;
      if (k >= 0 && k < 7) s->status = st[k];
    }
    if (type == 1 && fl >= 2 && q[0] == 0x08)
      s->status = atoi((const char[4]){q[2], q[3], q[4], 0});
    if (type == 6 && (p[i + 4] & 1)) s->ping_ack = true;
    i += 9 + fl;
  }
  if (i != len) s->frames_ok = false;
  h2_output_done(c, len);
}

enum { CONN, STREAM, NONE };
struct expect {
  const char *what;
  int level;  // CONN: h2_recv returns code and GOAWAY has it; STREAM: RST_STREAM code
  int code;
};

// Run raw (after the preface and SETTINGS) into a fresh engine, byte by byte
// when `split`, and check the error.
static void expect_err(bool server, const struct expect *x, void (*build)(void), bool split) {
  struct side s;
  side_init(&s, server, NULL);
  s.auto_consume = false;  // the raw peer never sees our WINDOW_UPDATEs
  struct seen seen;
  read_output(s.c, &seen);
  preface_settings(server);
  build();
  int r = 0;
  if (split)
    for (size_t i = 0; i < rawlen && !r; i++) r = h2_recv(s.c, raw + i, 1);
  else
    r = h2_recv(s.c, raw, rawlen);
  read_output(s.c, &seen);
  bool ok;
  if (x->level == CONN)
    ok = r == x->code && seen.goaway == x->code;
  else if (x->level == STREAM)
    ok = r == 0 && seen.goaway < 0 && seen.nrst > 0 && seen.rst[seen.nrst - 1] == x->code;
  else
    ok = r == 0 && seen.goaway < 0 && seen.nrst == 0;
  check(ok && seen.frames_ok, "%s %s: %s → %s %d%s (got h2_recv %d, GOAWAY %d, RST %d)",
        server ? "server" : "client", split ? "byte by byte" : "", x->what,
        x->level == CONN     ? "connection error"
        : x->level == STREAM ? "stream error"
                             : "no error",
        x->code, "", r, seen.goaway, seen.nrst ? seen.rst[seen.nrst - 1] : -1);
  h2_free(s.c);
}

#define B(name) static void name(void)
static uint8_t pl[2 << 20];
B(b_frame_too_big) {
  fr((1 << 20) + 1, 0, 0, 1, NULL, 0);
}
B(b_first_not_settings) {
  rawlen -= 9;  // drop the SETTINGS
  fr_auto(6, 0, 0, pl, 8);
}
B(b_data_stream_window) {
  // SETTINGS are not acknowledged yet, but the engine enforces its own 4 MiB at once:
  // 5 frames of 1 MiB overrun the stream window (the connection's is 16 MiB).
  connect_headers(1, 0);
  for (int i = 0; i < 5; i++) {
    fr(1 << 20, 0, 0, 1, NULL, 0);
    memset(raw + rawlen, 'd', 1 << 20);
    rawlen += 1 << 20;
  }
}
B(b_data_conn_window) {
  // 16 MiB + over several streams: each stream stays under 4 MiB, the connection does not.
  for (uint32_t sid = 1; sid <= 11; sid += 2) connect_headers(sid, 0);
  for (uint32_t sid = 1; sid <= 11; sid += 2)
    for (int i = 0; i < 3; i++) {
      fr(1 << 20, 0, 0, sid, NULL, 0);
      memset(raw + rawlen, 'd', 1 << 20);
      rawlen += 1 << 20;
    }
}
B(b_headers_even) {
  connect_headers(2, 0);
}
B(b_headers_pad) {
  uint8_t b[64];
  b[0] = 60;
  size_t n = block(b + 1, ":method", "CONNECT", ":authority", "h:1", NULL);
  fr_auto(1, 4 | 8, 1, b, n + 1);
}
B(b_headers_prio_self) {
  uint8_t b[64] = {0, 0, 0, 1, 16};
  size_t n = block(b + 5, ":method", "CONNECT", ":authority", "h:1", NULL);
  fr_auto(1, 4 | 0x20, 1, b, n + 5);
}
B(b_cont_other_type) {
  uint8_t b[64];
  size_t n = block(b, ":method", "CONNECT", ":authority", "h:1", NULL);
  fr_auto(1, 0, 1, b, n);
  fr_auto(6, 0, 0, pl, 8);
}
B(b_cont_other_stream) {
  uint8_t b[64];
  size_t n = block(b, ":method", "CONNECT", NULL);
  fr_auto(1, 0, 1, b, n);
  n = block(b, ":authority", "h:1", NULL);
  fr_auto(9, 4, 3, b, n);
}
B(b_trailers_no_end) {
  connect_headers(1, 0);
  uint8_t b[64];
  size_t n = block(b, "x-t", "1", NULL);
  fr_auto(1, 4, 1, b, n);
}
B(b_trailers_pseudo) {
  connect_headers(1, 0);
  uint8_t b[64];
  size_t n = block(b, ":method", "CONNECT", NULL);
  fr_auto(1, 5, 1, b, n);
}
B(b_headers_closed) {
  connect_headers(1, 1);
  connect_headers(1, 1);
}
B(b_unknown) {
  fr_auto(0x42, 0xff, 5, "whatever", 8);
  fr_auto(6, 0, 0, pl, 8);
}
#define MALFORMED(name, ...)                \
  B(name) {                                 \
    uint8_t b[256];                         \
    size_t n = block(b, __VA_ARGS__, NULL); \
    fr_auto(1, 4, 1, b, n);                 \
  }
MALFORMED(m_upper, ":method", "CONNECT", ":authority", "h:1", "Baggage", "x")
MALFORMED(m_path, ":method", "CONNECT", ":authority", "h:1", ":path", "/")
MALFORMED(m_scheme, ":method", "CONNECT", ":authority", "h:1", ":scheme", "https")
MALFORMED(m_no_authority, ":method", "CONNECT")
MALFORMED(m_empty_authority, ":method", "CONNECT", ":authority", "")
MALFORMED(m_no_method, ":authority", "h:1")
MALFORMED(m_connection, ":method", "CONNECT", ":authority", "h:1", "connection", "close")
MALFORMED(m_te, ":method", "CONNECT", ":authority", "h:1", "te", "gzip")
MALFORMED(m_pseudo_late, ":method", "CONNECT", "x", "1", ":authority", "h:1")
MALFORMED(m_pseudo_twice, ":method", "CONNECT", ":authority", "h:1", ":authority", "h:2")
MALFORMED(m_pseudo_unknown, ":method", "CONNECT", ":authority", "h:1", ":protocol", "websocket")
MALFORMED(m_status_in_request, ":method", "CONNECT", ":authority", "h:1", ":status", "200")
MALFORMED(m_value_crlf, ":method", "CONNECT", ":authority", "h:1", "x", "a\r\nb")
MALFORMED(m_value_space, ":method", "CONNECT", ":authority", "h:1", "x", " a")
MALFORMED(m_get, ":method", "GET", ":scheme", "https", ":path", "/", ":authority", "h:1")
MALFORMED(m_get_no_path, ":method", "GET", ":scheme", "https", ":authority", "h:1")
B(m_too_big) {
  static char v[4000];
  memset(v, 'v', sizeof v - 1);
  static uint8_t b[1 << 17];
  size_t n = block(b, ":method", "CONNECT", ":authority", "h:1", NULL);
  for (int i = 0; i < 20; i++) n += hpack_encode(b + n, sizeof b - n, "x", 1, v, 3999, false);
  // HEADERS + 2 CONTINUATION frames
  size_t third = n / 3;
  fr_auto(1, 0, 1, b, third);
  fr_auto(9, 0, 1, b + third, third);
  fr_auto(9, 4, 1, b + 2 * third, n - 2 * third);
}
B(m_refused) {
  for (uint32_t sid = 1; sid <= 401; sid += 2) connect_headers(sid, 0);
}
B(m_cont_ok) {
  uint8_t b[256];
  size_t n = block(b, ":method", "CONNECT", ":authority", "h:1", "baggage", "a=b", NULL);
  fr_auto(1, 0, 1, b, 3);
  fr_auto(9, 0, 1, b + 3, 5);
  fr_auto(9, 4, 1, b + 8, n - 8);
  fr_auto(0, 8 | 1, 1, "\3ab\0\0\0", 6);
}
// Client side: frames from a server.
B(c_headers_idle_even) {
  uint8_t b[64];
  size_t n = block(b, ":status", "200", NULL);
  fr_auto(1, 4, 2, b, n);
}
B(c_headers_idle_odd) {
  uint8_t b[64];
  size_t n = block(b, ":status", "200", NULL);
  fr_auto(1, 4, 1, b, n);
}

static h2_conn *client_with_stream(struct side *s) {
  side_init(s, false, NULL);
  struct seen seen;
  h2_open(s->c, "h:1", NULL, 0);
  read_output(s->c, &seen);
  preface_settings(false);
  return s->c;
}

// Client: responses from a raw server on stream 1.
static void client_case(const char *what, int level, int code, void (*build)(void),
                        int want_status) {
  struct side s;
  client_with_stream(&s);
  build();
  int r = h2_recv(s.c, raw, rawlen);
  struct seen seen;
  read_output(s.c, &seen);
  struct ev *resp = find_ev(&s, 'r', 1);
  bool ok;
  if (level == CONN)
    ok = r == code && seen.goaway == code;
  else if (level == STREAM)
    ok = r == 0 && seen.nrst > 0 && seen.rst[seen.nrst - 1] == code && !resp;
  else
    ok = r == 0 && seen.nrst == 0 && resp && resp->status == want_status;
  check(ok, "client: %s (h2_recv %d, GOAWAY %d, RST %d)", what, r, seen.goaway,
        seen.nrst ? seen.rst[0] : -1);
  h2_free(s.c);
}
#define RESP(name, ...)                     \
  B(name) {                                 \
    uint8_t b[256];                         \
    size_t n = block(b, __VA_ARGS__, NULL); \
    fr_auto(1, 4, 1, b, n);                 \
  }
RESP(r_ok, ":status", "200", "x-a", "1")
RESP(r_no_status, "x-a", "1")
RESP(r_bad_status, ":status", "20x")
RESP(r_short_status, ":status", "20")
RESP(r_request_pseudo, ":status", "200", ":authority", "h:1")
B(r_interim) {
  uint8_t b[64];
  size_t n = block(b, ":status", "100", NULL);
  fr_auto(1, 4, 1, b, n);
  n = block(b, ":status", "200", NULL);
  fr_auto(1, 4, 1, b, n);
}
B(r_interim_end) {
  uint8_t b[64];
  size_t n = block(b, ":status", "103", NULL);
  fr_auto(1, 5, 1, b, n);
}
B(r_data_first) {
  fr_auto(0, 0, 1, "x", 1);
}

static void test_goaway_refused(void) {
  struct side cl, sv;
  side_init(&cl, false, NULL);
  side_init(&sv, true, NULL);
  pump(&cl, &sv);
  h2_open(cl.c, "a:1", NULL, 0);
  pump(&cl, &sv);
  h2_goaway(sv.c, H2_NO_ERROR);
  int64_t late = h2_open(cl.c, "b:2", NULL, 0);  // crosses the GOAWAY
  pump(&cl, &sv);
  struct ev *c = find_ev(&cl, 'c', (uint32_t)late);
  check(c && c->code == H2_REFUSED_STREAM && c->remote && !find_ev(&sv, 'q', (uint32_t)late),
        "goaway: a stream above last-stream-id is refused and never reached the server");
  h2_free(cl.c);
  h2_free(sv.c);

  // The server ignores what a client opens after the server's GOAWAY, data included.
  side_init(&cl, false, NULL);
  side_init(&sv, true, NULL);
  pump(&cl, &sv);
  h2_goaway(sv.c, H2_NO_ERROR);
  struct seen seen;
  read_output(sv.c, &seen);  // the client never hears of the GOAWAY here
  late = h2_open(cl.c, "c:3", NULL, 0);
  h2_send(cl.c, late, (const uint8_t *)"data", 4, true);
  size_t len;
  const uint8_t *p = h2_output(cl.c, &len);
  int r = h2_recv(sv.c, p, len);
  h2_output_done(cl.c, len);
  read_output(sv.c, &seen);
  check(r == 0 && !find_ev(&sv, 'q', 0) && seen.nrst == 0 && seen.goaway < 0,
        "goaway: a stream opened after the server's GOAWAY is ignored, its DATA too");
  h2_free(cl.c);
  h2_free(sv.c);
}

// Frames follow the peer's SETTINGS_MAX_FRAME_SIZE; SETTINGS_INITIAL_WINDOW_SIZE
// changes move every stream's window by the difference (§6.9.2).
static void test_peer_settings(void) {
  struct h2_config sc;
  h2_config_default(&sc, true);
  sc.max_frame = 16384;
  sc.stream_window = 100000;
  struct side cl, sv;
  side_init(&cl, false, NULL);
  side_init(&sv, true, &sc);
  sv.respond = true;
  pump(&cl, &sv);
  int64_t id = h2_open(cl.c, "f:1", NULL, 0);
  pump(&cl, &sv);
  static uint8_t buf[40000];
  check(h2_send(cl.c, id, buf, sizeof buf, false) == 40000, "settings: 40000 bytes taken");
  pump(&cl, &sv);
  int frames = 0;
  for (int i = 0; i < sv.nev; i++) frames += sv.ev[i].type == 'd' && sv.ev[i].n <= 16384;
  check(frames == 3 && sv.data_bytes == 40000,
        "settings: sent as 3 DATA frames under the server's 16384 max frame size");
  h2_free(cl.c);
  h2_free(sv.c);

  // A raw server lowers, then raises, the initial window.
  side_init(&cl, false, NULL);
  id = h2_open(cl.c, "w:1", NULL, 0);
  struct seen seen;
  read_output(cl.c, &seen);
  rawlen = 0;
  fr_auto(4, 0, 0, "\0\4\0\0\0\x0a", 6);  // INITIAL_WINDOW_SIZE 10
  uint8_t b[64];
  size_t n = block(b, ":status", "200", NULL);
  fr_auto(1, 4, 1, b, n);
  int r = h2_recv(cl.c, raw, rawlen);
  check(r == 0 && h2_send(cl.c, id, buf, 100, false) == 10 && h2_send_room(cl.c, id) == 0,
        "settings: a 10-byte initial window lets 10 bytes out");
  rawlen = 0;
  fr_auto(4, 0, 0, "\0\4\0\0\0\x6e", 6);  // 110: +100 on the open stream
  r = h2_recv(cl.c, raw, rawlen);
  check(r == 0 && h2_send_room(cl.c, id) == 100 && find_ev(&cl, 'w', 0),
        "settings: raising it to 110 opens 100 more and says writable");
  rawlen = 0;
  fr_auto(4, 0, 0, "\0\4\0\0\0\0", 6);  // 0: the window goes negative
  r = h2_recv(cl.c, raw, rawlen);
  check(r == 0 && h2_send_room(cl.c, id) == 0 && h2_send(cl.c, id, buf, 1, false) == 0,
        "settings: lowering it to 0 leaves a negative window: nothing goes out");
  read_output(cl.c, &seen);
  h2_free(cl.c);
}

// Cases of one frame (after the preface and SETTINGS; `open`: 1 = a CONNECT on
// stream 1 first, 2 = the same with END_STREAM).
static const struct frame_case {
  struct expect x;
  int open;
  uint8_t type, flags;
  uint32_t sid;
  const char *payload;  // NULL: zeros
  size_t len;
} frame_cases[] = {
    // clang-format off
    {{"SETTINGS length not a multiple of 6", CONN, H2_FRAME_SIZE_ERROR}, 0, 4, 0x0, 0, NULL, 5},
    {{"SETTINGS ACK with a payload", CONN, H2_FRAME_SIZE_ERROR}, 0, 4, 0x1, 0, NULL, 6},
    {{"SETTINGS on a stream", CONN, H2_PROTOCOL_ERROR}, 0, 4, 0x0, 1, NULL, 0},
    {{"SETTINGS_ENABLE_PUSH 2", CONN, H2_PROTOCOL_ERROR}, 0, 4, 0x0, 0, "\0\2\0\0\0\2", 6},
    {{"SETTINGS_INITIAL_WINDOW_SIZE 2^31", CONN, H2_FLOW_CONTROL_ERROR}, 0, 4, 0x0, 0, "\0\4\x80\0\0\0", 6},
    {{"SETTINGS_MAX_FRAME_SIZE 4096", CONN, H2_PROTOCOL_ERROR}, 0, 4, 0x0, 0, "\0\5\0\0\x10\0", 6},
    {{"SETTINGS_MAX_FRAME_SIZE 2^24", CONN, H2_PROTOCOL_ERROR}, 0, 4, 0x0, 0, "\0\5\x01\0\0\0", 6},
    {{"unknown setting ignored", NONE, 0}, 0, 4, 0x0, 0, "\0\x99\0\0\0\1", 6},
    {{"PING of 7 bytes", CONN, H2_FRAME_SIZE_ERROR}, 0, 6, 0x0, 0, NULL, 7},
    {{"PING on a stream", CONN, H2_PROTOCOL_ERROR}, 0, 6, 0x0, 1, NULL, 8},
    {{"WINDOW_UPDATE 0 on the connection", CONN, H2_PROTOCOL_ERROR}, 0, 8, 0x0, 0, "\0\0\0\0", 4},
    {{"WINDOW_UPDATE of 3 bytes", CONN, H2_FRAME_SIZE_ERROR}, 0, 8, 0x0, 0, "\0\0\1", 3},
    {{"WINDOW_UPDATE past 2^31-1 on the connection", CONN, H2_FLOW_CONTROL_ERROR}, 0, 8, 0x0, 0, "\x7f\xff\xff\xff", 4},
    {{"WINDOW_UPDATE 0 on a stream", STREAM, H2_PROTOCOL_ERROR}, 1, 8, 0x0, 1, "\0\0\0\0", 4},
    {{"WINDOW_UPDATE past 2^31-1 on a stream", STREAM, H2_FLOW_CONTROL_ERROR}, 1, 8, 0x0, 1, "\x7f\xff\xff\xff", 4},
    {{"WINDOW_UPDATE on an idle stream", CONN, H2_PROTOCOL_ERROR}, 0, 8, 0x0, 7, "\0\0\0\1", 4},
    {{"RST_STREAM on stream 0", CONN, H2_PROTOCOL_ERROR}, 0, 3, 0x0, 0, "\0\0\0\1", 4},
    {{"RST_STREAM on an idle stream", CONN, H2_PROTOCOL_ERROR}, 0, 3, 0x0, 9, "\0\0\0\1", 4},
    {{"RST_STREAM of 3 bytes", CONN, H2_FRAME_SIZE_ERROR}, 1, 3, 0x0, 1, "\0\0\1", 3},
    {{"DATA on stream 0", CONN, H2_PROTOCOL_ERROR}, 0, 0, 0x0, 0, "x", 1},
    {{"DATA on an idle stream", CONN, H2_PROTOCOL_ERROR}, 0, 0, 0x0, 1, "x", 1},
    {{"DATA padding longer than the frame", CONN, H2_PROTOCOL_ERROR}, 1, 0, 0x8, 1, "\5abc", 4},
    {{"padded DATA without the pad length", CONN, H2_PROTOCOL_ERROR}, 1, 0, 0x8, 1, NULL, 0},
    {{"DATA after END_STREAM", STREAM, H2_STREAM_CLOSED}, 2, 0, 0x0, 1, "x", 1},
    {{"HEADERS on stream 0", CONN, H2_PROTOCOL_ERROR}, 0, 1, 0x5, 0, "\x82", 1},
    {{"HEADERS priority cut short", CONN, H2_FRAME_SIZE_ERROR}, 0, 1, 0x24, 1, "\0\0", 2},
    {{"HEADERS with a bad HPACK index", CONN, H2_COMPRESSION_ERROR}, 0, 1, 0x4, 1, "\x80", 1},
    {{"CONTINUATION without HEADERS", CONN, H2_PROTOCOL_ERROR}, 0, 9, 0x4, 1, "\x82", 1},
    {{"PUSH_PROMISE from a client", CONN, H2_PROTOCOL_ERROR}, 0, 5, 0x4, 1, "\0\0\0\2\x82", 5},
    {{"GOAWAY of 7 bytes", CONN, H2_FRAME_SIZE_ERROR}, 0, 7, 0x0, 0, NULL, 7},
    {{"GOAWAY on a stream", CONN, H2_PROTOCOL_ERROR}, 0, 7, 0x0, 1, NULL, 8},
    {{"PRIORITY of 4 bytes", STREAM, H2_FRAME_SIZE_ERROR}, 0, 2, 0x0, 1, NULL, 4},
    {{"PRIORITY on stream 0", CONN, H2_PROTOCOL_ERROR}, 0, 2, 0x0, 0, NULL, 5},
    {{"PRIORITY depending on itself", STREAM, H2_PROTOCOL_ERROR}, 0, 2, 0x0, 3, "\0\0\0\3\x10", 5},
    {{"PRIORITY ignored", NONE, 0}, 0, 2, 0x0, 3, "\0\0\0\1\x10", 5},
    // clang-format on
};
static const struct frame_case *cur;
static void b_case(void) {
  if (cur->open) connect_headers(1, cur->open == 2);
  fr_auto(cur->type, cur->flags, cur->sid, cur->payload ? cur->payload : (const char *)pl,
          cur->len);
}

static void test_errors(void) {
  static const struct {
    struct expect x;
    void (*build)(void);
  } server_cases[] = {
      {{"frame over our 1 MiB SETTINGS_MAX_FRAME_SIZE", CONN, H2_FRAME_SIZE_ERROR},
       b_frame_too_big},
      {{"first frame not SETTINGS", CONN, H2_PROTOCOL_ERROR}, b_first_not_settings},
      {{"DATA over the 4 MiB stream window", STREAM, H2_FLOW_CONTROL_ERROR}, b_data_stream_window},
      {{"DATA over the 16 MiB connection window", CONN, H2_FLOW_CONTROL_ERROR}, b_data_conn_window},
      {{"HEADERS opening an even stream", CONN, H2_PROTOCOL_ERROR}, b_headers_even},
      {{"HEADERS padding longer than the frame", CONN, H2_PROTOCOL_ERROR}, b_headers_pad},
      {{"HEADERS depending on itself", STREAM, H2_PROTOCOL_ERROR}, b_headers_prio_self},
      {{"another frame inside a header block", CONN, H2_PROTOCOL_ERROR}, b_cont_other_type},
      {{"CONTINUATION of another stream", CONN, H2_PROTOCOL_ERROR}, b_cont_other_stream},
      {{"second HEADERS without END_STREAM", STREAM, H2_PROTOCOL_ERROR}, b_trailers_no_end},
      {{"pseudo-header in trailers", STREAM, H2_PROTOCOL_ERROR}, b_trailers_pseudo},
      {{"HEADERS after END_STREAM", STREAM, H2_STREAM_CLOSED}, b_headers_closed},
      {{"unknown frame type ignored", NONE, 0}, b_unknown},
      {{"upper-case field name", STREAM, H2_PROTOCOL_ERROR}, m_upper},
      {{"CONNECT with :path", STREAM, H2_PROTOCOL_ERROR}, m_path},
      {{"CONNECT with :scheme", STREAM, H2_PROTOCOL_ERROR}, m_scheme},
      {{"CONNECT without :authority", STREAM, H2_PROTOCOL_ERROR}, m_no_authority},
      {{"CONNECT with an empty :authority", STREAM, H2_PROTOCOL_ERROR}, m_empty_authority},
      {{"request without :method", STREAM, H2_PROTOCOL_ERROR}, m_no_method},
      {{"connection header", STREAM, H2_PROTOCOL_ERROR}, m_connection},
      {{"te: gzip", STREAM, H2_PROTOCOL_ERROR}, m_te},
      {{"pseudo-header after a regular one", STREAM, H2_PROTOCOL_ERROR}, m_pseudo_late},
      {{"pseudo-header twice", STREAM, H2_PROTOCOL_ERROR}, m_pseudo_twice},
      {{":protocol (extended CONNECT is not offered)", STREAM, H2_PROTOCOL_ERROR},
       m_pseudo_unknown},
      {{":status in a request", STREAM, H2_PROTOCOL_ERROR}, m_status_in_request},
      {{"CR LF in a value", STREAM, H2_PROTOCOL_ERROR}, m_value_crlf},
      {{"value starting with a space", STREAM, H2_PROTOCOL_ERROR}, m_value_space},
      {{"GET without :path", STREAM, H2_PROTOCOL_ERROR}, m_get_no_path},
  };
  for (int split = 0; split < 2; split++)
    for (size_t i = 0; i < sizeof server_cases / sizeof server_cases[0]; i++) {
      if (split && (server_cases[i].build == b_data_conn_window ||
                    server_cases[i].build == b_data_stream_window))
        continue;  // megabytes one byte at a time: slow under ASan, nothing new
      expect_err(true, &server_cases[i].x, server_cases[i].build, split);
    }
  for (int split = 0; split < 2; split++)
    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
      cur = &frame_cases[i];
      expect_err(true, &cur->x, b_case, split);
    }

  // Answers the engine gives by itself.
  struct side s;
  struct seen seen;
  const struct {
    const char *what;
    void (*build)(void);
    int status;
  } answers[] = {
      {"GET (not CONNECT) → 400", m_get, 400},
      {"header list over 64 KiB, in HEADERS + CONTINUATION → 431", m_too_big, 431},
  };
  for (size_t i = 0; i < 2; i++) {
    side_init(&s, true, NULL);
    read_output(s.c, &seen);
    preface_settings(true);
    answers[i].build();
    int r = h2_recv(s.c, raw, rawlen);
    read_output(s.c, &seen);
    check(r == 0 && seen.status == answers[i].status && seen.nrst == 1 && seen.rst[0] == 0 &&
              !find_ev(&s, 'q', 0),
          "server: %s and RST_STREAM NO_ERROR (status %d)", answers[i].what, seen.status);
    h2_free(s.c);
  }
  // 200 streams at once; the 201st is refused.
  side_init(&s, true, NULL);
  read_output(s.c, &seen);
  preface_settings(true);
  m_refused();
  int r = h2_recv(s.c, raw, rawlen);
  read_output(s.c, &seen);
  int reqs = 0;
  for (int i = 0; i < s.nev; i++) reqs += s.ev[i].type == 'q';
  check(r == 0 && reqs == 200 && seen.nrst == 1 && seen.rst[0] == H2_REFUSED_STREAM &&
            seen.rst_sid[0] == 401,
        "server: 200 concurrent streams, the 201st REFUSED_STREAM (%d requests)", reqs);
  h2_free(s.c);
  // HEADERS split over CONTINUATION frames, then padded DATA with END_STREAM.
  side_init(&s, true, NULL);
  read_output(s.c, &seen);
  preface_settings(true);
  m_cont_ok();
  r = h2_recv(s.c, raw, rawlen);
  struct ev *q = find_ev(&s, 'q', 1), *d = find_ev(&s, 'd', 1);
  check(r == 0 && q && !strcmp(q->text, "h:1|baggage=a=b;") && d && d->n == 2 &&
            !strcmp(d->text, "ab") && find_ev(&s, 'e', 1),
        "server: HEADERS + 2 CONTINUATION, padded DATA with END_STREAM");
  h2_free(s.c);
  // Unknown frames are skipped and the connection goes on (PING answered after it).
  side_init(&s, true, NULL);
  read_output(s.c, &seen);
  preface_settings(true);
  b_unknown();
  r = h2_recv(s.c, raw, rawlen);
  read_output(s.c, &seen);
  check(r == 0 && seen.ping_ack, "server: PING answered after an unknown frame");
  h2_free(s.c);
  // A PING flood from a peer that never reads our ACKs.
  side_init(&s, true, NULL);
  read_output(s.c, &seen);
  preface_settings(true);
  for (int i = 0; i < 70000; i++) fr_auto(6, 0, 0, pl, 8);
  r = h2_recv(s.c, raw, rawlen);
  check(r == H2_ENHANCE_YOUR_CALM,
        "server: PING flood with 1 MiB of unread ACKs → ENHANCE_YOUR_CALM");
  h2_free(s.c);
  // Bad preface.
  side_init(&s, true, NULL);
  read_output(s.c, &seen);
  r = h2_recv(s.c, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);
  read_output(s.c, &seen);
  check(
      r == H2_PROTOCOL_ERROR && seen.goaway == H2_PROTOCOL_ERROR &&
          h2_recv(s.c, (const uint8_t *)"x", 1) == H2_PROTOCOL_ERROR &&
          h2_open(s.c, "a:1", NULL, 0) == H2_E_DEAD,
      "server: HTTP/1.1 instead of the preface → PROTOCOL_ERROR, and the connection stays failed");
  h2_free(s.c);

  static const struct frame_case client_frames[] = {
      {{"SETTINGS_ENABLE_PUSH 1 from a server", CONN, H2_PROTOCOL_ERROR},
       0,
       4,
       0,
       0,
       "\0\2\0\0\0\1",
       6},
      {{"PUSH_PROMISE", CONN, H2_PROTOCOL_ERROR}, 0, 5, 4, 1, "\0\0\0\2\x88", 5},
  };
  for (size_t i = 0; i < 2; i++) {
    cur = &client_frames[i];
    expect_err(false, &cur->x, b_case, false);
  }
  static const struct expect even = {"HEADERS on an even (pushed) stream", CONN, H2_PROTOCOL_ERROR},
                             odd = {"HEADERS on a stream the client never opened", CONN,
                                    H2_PROTOCOL_ERROR};
  expect_err(false, &even, c_headers_idle_even, false);
  expect_err(false, &odd, c_headers_idle_odd, false);
  client_case("response 200 with a header", NONE, 0, r_ok, 200);
  client_case("response without :status → stream PROTOCOL_ERROR", STREAM, H2_PROTOCOL_ERROR,
              r_no_status, 0);
  client_case("response :status 20x → stream PROTOCOL_ERROR", STREAM, H2_PROTOCOL_ERROR,
              r_bad_status, 0);
  client_case("response :status 20 → stream PROTOCOL_ERROR", STREAM, H2_PROTOCOL_ERROR,
              r_short_status, 0);
  client_case("response with :authority → stream PROTOCOL_ERROR", STREAM, H2_PROTOCOL_ERROR,
              r_request_pseudo, 0);
  client_case("100 Continue skipped, then 200", NONE, 0, r_interim, 200);
  client_case("103 with END_STREAM → stream PROTOCOL_ERROR", STREAM, H2_PROTOCOL_ERROR,
              r_interim_end, 0);
  client_case("DATA before the response → stream PROTOCOL_ERROR", STREAM, H2_PROTOCOL_ERROR,
              r_data_first, 0);
}

// ---- fuzz -------------------------------------------------------------------------------
static bool valid_code(int code) {
  return code >= 0 && code <= H2_ENHANCE_YOUR_CALM;
}

static void mutate(uint8_t *p, size_t *len, size_t cap) {
  int k = 1 + rnd() % 4;
  for (int i = 0; i<k && * len> 0; i++) {
    size_t at = rnd() % *len;
    switch (rnd() % 6) {
      case 0:
        p[at] ^= 1 << (rnd() % 8);
        break;
      case 1:
        p[at] = (uint8_t)rnd();
        break;
      case 2:
        p[at] = (uint8_t[]){0, 0xff, 0x7f, 0x80, 1}[rnd() % 5];
        break;
      case 3:
        *len = at;  // truncate
        break;
      case 4:
        if (*len < cap) {  // insert a byte
          memmove(p + at + 1, p + at, *len - at);
          p[at] = (uint8_t)rnd();
          (*len)++;
        }
        break;
      case 5:
        if (*len > 1) {  // delete a byte
          memmove(p + at, p + at + 1, *len - at - 1);
          (*len)--;
        }
        break;
    }
  }
}

static void fuzz_hpack(int cases) {
  static const char *const seeds[] = {
      "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
      ("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e "
       "919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"),
      "3fe1 1f40 0a63 7573 746f 6d2d 6b65 790d 6375 7374 6f6d 2d68 6561 6465 72be",
      "1008 7061 7373 776f 7264 0673 6563 7265 74",
  };
  int errors = 0, oks = 0, bad = 0;
  struct hpack_dec d;
  hpack_dec_init(&d);
  for (int i = 0; i < cases; i++) {
    uint8_t in[512];
    size_t n = unhex(seeds[rnd() % 5], in);
    if (rnd() % 8 == 0) {
      n = rnd() % 64;
      for (size_t k = 0; k < n; k++) in[k] = (uint8_t)rnd();
    } else {
      mutate(in, &n, sizeof in);
    }
    struct fields f = {0};
    static char small[HPACK_TABLE_MAX];  // the smallest output buffer allowed
    bool tight = rnd() % 4 == 0;
    uint8_t *exact = malloc(n ? n : 1);  // exactly n bytes: ASan sees any read past them
    memcpy(exact, in, n);
    int r = hpack_decode(&d, exact, n, tight ? small : hbuf, tight ? sizeof small : sizeof hbuf,
                         collect, &f);
    free(exact);
    if (r == HPACK_OK || r == HPACK_TOO_BIG)
      oks++;
    else if (r == HPACK_ERROR)
      errors++;
    else
      bad++;
    if (d.size > d.max_size || d.max_size > HPACK_TABLE_MAX) bad++;
    if (r == HPACK_ERROR) {  // a connection would be gone: start again
      hpack_dec_free(&d);
      hpack_dec_init(&d);
    }
  }
  hpack_dec_free(&d);
  check(bad == 0 && errors > 0 && oks > 0,
        "fuzz hpack: %d mutated blocks, %d decoded, %d COMPRESSION_ERROR, table within limits",
        cases, oks, errors);
}

// A valid client session as raw bytes: what the fuzz mutates.
static void client_session(void) {
  preface_settings(true);
  fr_auto(4, 1, 0, NULL, 0);
  fr_auto(8, 0, 0, "\0\1\0\0", 4);
  uint8_t b[512];
  size_t n = block(b, ":method", "CONNECT", ":authority", "10.0.0.1:80", "baggage", "k=v",
                   "traceparent", "00-01-02-01", NULL);
  fr_auto(1, 4, 1, b, n);
  fr_auto(0, 0, 1, "hello world", 11);
  fr_auto(0, 8, 1, "\2pad\0\0", 6);
  fr_auto(6, 0, 0, "12345678", 8);
  fr_auto(1, 0x24, 3, (uint8_t[]){0, 0, 0, 1, 9, 0x82}, 6);
  n = block(b, ":method", "CONNECT", NULL);
  fr_auto(1, 0, 5, b, n);
  n = block(b, ":authority", "h:5", NULL);
  fr_auto(9, 4, 5, b, n);
  fr_auto(8, 0, 5, "\0\0\1\0", 4);
  fr_auto(2, 0, 5, "\0\0\0\1\1", 5);
  fr_auto(0, 1, 5, "bye", 3);
  fr_auto(3, 0, 1, "\0\0\0\x08", 4);
  fr_auto(0x20, 0, 0, "ext", 3);
  fr_auto(7, 0, 0, "\0\0\0\5\0\0\0\0", 8);
}

static void server_session(void) {
  preface_settings(false);
  fr_auto(4, 1, 0, NULL, 0);
  uint8_t b[256];
  size_t n = block(b, ":status", "200", "server", "x", NULL);
  fr_auto(1, 4, 1, b, n);
  fr_auto(0, 0, 1, "payload", 7);
  fr_auto(8, 0, 1, "\0\0\1\0", 4);
  fr_auto(6, 1, 0, "\0\0\0\0\0\0\0\7", 8);
  fr_auto(0, 1, 1, "end", 3);
  fr_auto(3, 0, 3, "\0\0\0\x08", 4);
  fr_auto(7, 0, 0, "\0\0\0\1\0\0\0\0", 8);
}

static void fuzz_frames(int cases) {
  static uint8_t base[2][4096], buf[4096];
  size_t base_len[2];
  client_session();
  memcpy(base[0], raw, rawlen);
  base_len[0] = rawlen;
  server_session();
  memcpy(base[1], raw, rawlen);
  base_len[1] = rawlen;
  int conn_errs = 0, clean = 0, bad = 0, resets = 0;
  for (int i = 0; i < cases; i++) {
    int role = rnd() % 2;  // 0: our server fed a client's bytes
    size_t n = base_len[role];
    memcpy(buf, base[role], n);
    mutate(buf, &n, sizeof buf);
    struct side s;
    side_init(&s, role == 0, NULL);
    s.auto_consume = rnd() % 2;
    s.respond = true;
    if (role == 1) h2_open(s.c, "h:1", NULL, 0), h2_open(s.c, "h:3", NULL, 0);
    struct seen seen;
    read_output(s.c, &seen);
    int r = 0;
    for (size_t at = 0; at < n && !r;) {
      size_t k = 1 + rnd() % 64;
      if (k > n - at) k = n - at;
      uint8_t *chunk = malloc(k);  // exactly k bytes: ASan sees any read past them
      memcpy(chunk, buf + at, k);
      r = h2_recv(s.c, chunk, k);
      free(chunk);
      at += k;
      read_output(s.c, &seen);
      if (!seen.frames_ok) bad++;
      for (int j = 0; j < seen.nrst; j++) resets++, bad += !valid_code(seen.rst[j]);
      if (r) bad += !valid_code(r) || seen.goaway != r;  // the GOAWAY carries the code
    }
    if (r)
      conn_errs++;
    else
      clean++;
    h2_free(s.c);
  }
  check(bad == 0 && conn_errs > 0 && clean > 0 && resets > 0,
        "fuzz frames: %d mutated sessions in random splits: %d connection errors (GOAWAY with "
        "the code), %d stream resets, %d clean; output always whole frames",
        cases, conn_errs, resets, clean);
}

int main(int argc, char **argv) {
  int fuzz = argc > 1 ? atoi(argv[1]) : 20000;
  test_huffman();
  test_hpack_rfc();
  test_hpack_encode();
  test_hpack_errors();
  test_pair_basic();
  test_goaway_refused();
  test_states();
  test_flow_control();
  test_peer_settings();
  test_limits();
  test_errors();
  fuzz_hpack(fuzz);
  fuzz_frames(fuzz);
  printf("1..%d\n# %d failed\n", checks, failures);
  return failures != 0;
}
