// The HTTP/2 CONNECT engine (see h2.h): frame reader, stream table, flow
// control, header validation. Frames are parsed as bytes arrive: DATA payload
// goes to the owner straight from the input, other frames are held whole.
#include "h2.h"

#include <stdlib.h>
#include <string.h>

enum {
  F_DATA,
  F_HEADERS,
  F_PRIORITY,
  F_RST,
  F_SETTINGS,
  F_PUSH,
  F_PING,
  F_GOAWAY,
  F_WINDOW,
  F_CONT
};
enum {
  FL_END_STREAM = 0x1,
  FL_ACK = 0x1,
  FL_END_HEADERS = 0x4,
  FL_PADDED = 0x8,
  FL_PRIORITY = 0x20
};
enum {
  S_TABLE_SIZE = 1,
  S_ENABLE_PUSH,
  S_MAX_STREAMS,
  S_INITIAL_WINDOW,
  S_MAX_FRAME,
  S_MAX_HEADER_LIST
};

#define DEFAULT_WINDOW 65535
#define DEFAULT_FRAME 16384
#define MAX_FRAME_LIMIT 0xffffff
#define MAX_WINDOW 0x7fffffff
#define MAX_STREAM_ID 0x7fffffff
#define CTRL_MAX (256 * 1024)  // largest non-DATA frame, and header block, we hold
#define RESET_RING 64          // streams we reset lately: their late frames are ignored
// Replies the peer's frames cause (SETTINGS and PING ACKs, resets) while this
// much output is unsent: a peer that sends them without reading is cut off.
#define REPLY_BACKLOG_MAX (1 << 20)

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

struct stream {
  uint32_t id;
  bool local_end, remote_end;      // END_STREAM sent / received
  bool sent_headers, got_headers;  // our request or response / the peer's
  int64_t send_win, recv_win;      // what we may send / the peer may still send
  uint32_t unacked;                // consumed, not yet given back in WINDOW_UPDATE
  void *user;
};

// The header block being decoded, as the hpack callback sees it.
struct msg {
  bool request, trailers;
  bool malformed, too_many, regular;
  unsigned seen;  // pseudo-headers seen, bit per pseudo[] entry
  const char *val[5];
  size_t len[5];
  struct h2_header h[H2_MAX_HEADERS];
  int n;
};
static const char *const pseudo[5] = {":method", ":authority", ":scheme", ":path", ":status"};
enum { P_METHOD, P_AUTHORITY, P_SCHEME, P_PATH, P_STATUS };

struct h2_conn {
  bool server;
  struct h2_config cfg;
  struct h2_events ev;
  void *ctx;
  bool failed;
  uint32_t fail_code;
  // Receiving: the frame in progress.
  size_t preface_left;  // server: client preface bytes still expected
  bool got_settings;
  uint8_t fh[9];
  size_t fh_len;
  uint32_t flen, fsid, fpos;
  uint8_t ftype, fflags;
  uint8_t *fbuf;  // a held frame's payload
  size_t fbuf_cap;
  // DATA: padding, where it goes, how much went there.
  uint32_t dpad, ddelivered;
  bool ddeliver;
  // The header block in progress (HEADERS + CONTINUATION).
  bool in_block;
  uint32_t block_sid, block_err;
  uint8_t block_flags;
  uint8_t *block;
  size_t block_len, block_cap;
  struct hpack_dec hpack;
  char *hdrbuf;  // decoded names and values (max_header_list bytes)
  struct msg msg;
  // The peer's settings and both connection windows.
  uint32_t peer_max_frame, peer_initial_window, peer_max_streams, peer_max_list;
  int64_t send_win, recv_win;
  uint32_t unacked;
  // Streams.
  struct stream **st;
  int nst, stcap;
  uint32_t next_id;       // our next stream id
  uint32_t last_peer_id;  // highest stream id the peer opened
  uint32_t reset_ring[RESET_RING];
  int reset_pos;
  bool goaway_sent, goaway_recv;
  uint64_t ping_payload;
  bool ping_out;
  // Output.
  uint8_t *out;
  size_t out_off, out_len, out_cap;
};

static void put32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t min32(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

// ---- output ----------------------------------------------------------------------
static uint32_t conn_error(h2_conn *c, uint32_t code);

// Room for n more output bytes; NULL (and the connection failed) when out of memory.
static uint8_t *reserve(h2_conn *c, size_t n) {
  if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
  if (c->out_len + n > c->out_cap) {
    if (c->out_off > 0) {  // move the unsent bytes down first
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n) cap *= 2;
    uint8_t *p = cap == c->out_cap ? c->out : realloc(c->out, cap);
    if (!p) {
      c->failed = true;  // no GOAWAY: there is no room for one
      c->fail_code = H2_INTERNAL_ERROR;
      return NULL;
    }
    c->out = p;
    c->out_cap = cap;
  }
  uint8_t *p = c->out + c->out_len;
  c->out_len += n;
  return p;
}

// A frame header and room for its payload (len bytes after the returned pointer).
static uint8_t *frame(h2_conn *c, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid) {
  uint8_t *p = reserve(c, 9 + (size_t)len);
  if (!p) return NULL;
  p[0] = len >> 16;
  p[1] = len >> 8;
  p[2] = len;
  p[3] = type;
  p[4] = flags;
  put32(p + 5, sid);
  return p + 9;
}

static void send_u32(h2_conn *c, uint8_t type, uint32_t sid, uint32_t v) {
  uint8_t *p = frame(c, 4, type, 0, sid);
  if (p) put32(p, v);
}

static void send_goaway(h2_conn *c, uint32_t code) {
  uint8_t *p = frame(c, 8, F_GOAWAY, 0, 0);
  if (!p) return;
  put32(p, c->last_peer_id);
  put32(p + 4, code);
}

const uint8_t *h2_output(h2_conn *c, size_t *len) {
  *len = c->out_len - c->out_off;
  return c->out + c->out_off;
}

void h2_output_done(h2_conn *c, size_t n) {
  c->out_off += n < c->out_len - c->out_off ? n : c->out_len - c->out_off;
}

// ---- streams ---------------------------------------------------------------------
static struct stream *find(const h2_conn *c, uint32_t id) {
  for (int i = 0; i < c->nst; i++)
    if (c->st[i]->id == id) return c->st[i];
  return NULL;
}

static struct stream *add_stream(h2_conn *c, uint32_t id) {
  if (c->nst == c->stcap) {
    int cap = c->stcap ? c->stcap * 2 : 16;
    struct stream **st = realloc(c->st, cap * sizeof *st);
    if (!st) return NULL;
    c->st = st;
    c->stcap = cap;
  }
  struct stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->id = id;
  s->send_win = c->peer_initial_window;
  s->recv_win = c->cfg.stream_window;
  c->st[c->nst++] = s;
  return s;
}

static void remove_stream(h2_conn *c, uint32_t id) {
  for (int i = 0; i < c->nst; i++) {
    if (c->st[i]->id != id) continue;
    free(c->st[i]);
    c->st[i] = c->st[--c->nst];
    return;
  }
}

static bool recently_reset(const h2_conn *c, uint32_t id) {
  for (int i = 0; i < RESET_RING; i++)
    if (c->reset_ring[i] == id) return true;
  return false;
}

// False (and the connection failed) when the peer makes us queue replies it does not read.
static bool reply_room(h2_conn *c) {
  if (c->out_len - c->out_off <= REPLY_BACKLOG_MAX) return true;
  conn_error(c, H2_ENHANCE_YOUR_CALM);
  return false;
}

// Forget stream id: whatever the peer still sends on it is ignored.
static void ignore_stream(h2_conn *c, uint32_t id) {
  remove_stream(c, id);
  c->reset_ring[c->reset_pos++ % RESET_RING] = id;
}

// Send RST_STREAM and forget the stream.
static void send_reset(h2_conn *c, uint32_t id, uint32_t code) {
  send_u32(c, F_RST, id, code);
  ignore_stream(c, id);
}

// A stream error found in the peer's frames: the owner hears of it if it knew the stream.
static void stream_error(h2_conn *c, uint32_t id, uint32_t code) {
  if (!reply_room(c)) return;
  bool known = find(c, id) != NULL;
  send_reset(c, id, code);
  if (known && c->ev.closed) c->ev.closed(c->ctx, id, code, false);
}

// Where a frame's stream id stands.
enum { ST_OPEN, ST_IDLE, ST_CLOSED };
static int classify(const h2_conn *c, uint32_t id, struct stream **s) {
  *s = find(c, id);
  if (*s) return ST_OPEN;
  bool ours = (id & 1) == !c->server;  // clients open odd ids
  if (ours) return id >= c->next_id ? ST_IDLE : ST_CLOSED;
  return id > c->last_peer_id ? ST_IDLE : ST_CLOSED;
}

// Both ends ended: the stream is gone.
static void maybe_done(h2_conn *c, struct stream *s, bool event) {
  if (!s->local_end || !s->remote_end) return;
  uint32_t id = s->id;
  remove_stream(c, id);
  if (event && c->ev.closed) c->ev.closed(c->ctx, id, H2_NO_ERROR, true);
}

// The peer's END_STREAM on s.
static void remote_end(h2_conn *c, struct stream *s) {
  uint32_t id = s->id;
  s->remote_end = true;
  if (c->ev.end) c->ev.end(c->ctx, id);
  if ((s = find(c, id))) maybe_done(c, s, true);
}

// ---- flow control ----------------------------------------------------------------
// n received bytes are done with: once half a window is, it goes back to the peer.
static void give_back(h2_conn *c, struct stream *s, size_t n) {
  c->unacked += n;
  if (c->unacked >= c->cfg.conn_window / 2) {
    send_u32(c, F_WINDOW, 0, c->unacked);
    c->recv_win += c->unacked;
    c->unacked = 0;
  }
  if (!s || s->remote_end) return;
  s->unacked += n;
  if (s->unacked >= c->cfg.stream_window / 2) {
    send_u32(c, F_WINDOW, s->id, s->unacked);
    s->recv_win += s->unacked;
    s->unacked = 0;
  }
}

void h2_consumed(h2_conn *c, uint32_t id, size_t n) {
  if (!c->failed) give_back(c, find(c, id), n);
}

// ---- set-up ----------------------------------------------------------------------
void h2_config_default(struct h2_config *cfg, bool server) {
  *cfg = (struct h2_config){
      .stream_window = 4 << 20,
      .conn_window = 16 << 20,
      .max_frame = 1 << 20,
      .max_streams = server ? 200 : 100,
      .max_header_list = 64 << 10,
  };
}

static void send_settings(h2_conn *c) {
  struct setting {
    uint16_t id;
    uint32_t v;
  } s[5];
  int n = 0;
  if (c->server)
    s[n++] = (struct setting){S_MAX_STREAMS, c->cfg.max_streams};
  else
    s[n++] = (struct setting){S_ENABLE_PUSH, 0};
  s[n++] = (struct setting){S_INITIAL_WINDOW, c->cfg.stream_window};
  s[n++] = (struct setting){S_MAX_FRAME, c->cfg.max_frame};
  s[n++] = (struct setting){S_MAX_HEADER_LIST, c->cfg.max_header_list};
  uint8_t *p = frame(c, n * 6, F_SETTINGS, 0, 0);
  if (!p) return;
  for (int i = 0; i < n; i++, p += 6) {
    p[0] = s[i].id >> 8;
    p[1] = s[i].id;
    put32(p + 2, s[i].v);
  }
  if (c->cfg.conn_window > DEFAULT_WINDOW)
    send_u32(c, F_WINDOW, 0, c->cfg.conn_window - DEFAULT_WINDOW);
}

h2_conn *h2_new(bool server, const struct h2_config *cfg, const struct h2_events *ev, void *ctx) {
  h2_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->server = server;
  if (cfg)
    c->cfg = *cfg;
  else
    h2_config_default(&c->cfg, server);
  // Keep our own limits inside what the protocol allows.
  if (c->cfg.max_frame < DEFAULT_FRAME) c->cfg.max_frame = DEFAULT_FRAME;
  if (c->cfg.max_frame > MAX_FRAME_LIMIT) c->cfg.max_frame = MAX_FRAME_LIMIT;
  if (c->cfg.stream_window > MAX_WINDOW) c->cfg.stream_window = MAX_WINDOW;
  if (c->cfg.conn_window < DEFAULT_WINDOW) c->cfg.conn_window = DEFAULT_WINDOW;
  if (c->cfg.conn_window > MAX_WINDOW) c->cfg.conn_window = MAX_WINDOW;
  if (c->cfg.max_header_list < HPACK_TABLE_MAX) c->cfg.max_header_list = HPACK_TABLE_MAX;
  if (ev) c->ev = *ev;
  c->ctx = ctx;
  c->preface_left = server ? PREFACE_LEN : 0;
  c->peer_max_frame = DEFAULT_FRAME;
  c->peer_initial_window = DEFAULT_WINDOW;
  c->peer_max_streams = UINT32_MAX;
  c->peer_max_list = UINT32_MAX;
  c->send_win = DEFAULT_WINDOW;
  c->recv_win = c->cfg.conn_window;
  c->next_id = server ? 2 : 1;
  if (!hpack_dec_init(&c->hpack)) {
    free(c);
    return NULL;
  }
  if (!server) {
    uint8_t *p = reserve(c, PREFACE_LEN);
    if (p) memcpy(p, preface, PREFACE_LEN);
  }
  send_settings(c);
  if (c->failed) {
    h2_free(c);
    return NULL;
  }
  return c;
}

void h2_free(h2_conn *c) {
  if (!c) return;
  for (int i = 0; i < c->nst; i++) free(c->st[i]);
  free(c->st);
  hpack_dec_free(&c->hpack);
  free(c->hdrbuf);
  free(c->block);
  free(c->fbuf);
  free(c->out);
  free(c);
}

static uint32_t conn_error(h2_conn *c, uint32_t code) {
  if (c->failed) return c->fail_code;
  send_goaway(c, code);
  c->failed = true;
  c->fail_code = code;
  return code;
}

// ---- header blocks -----------------------------------------------------------------
static bool is_name(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

// RFC 9113 §8.2.1: lower-case token names; values without NUL, CR, LF or
// surrounding white space.
static bool valid_field(const char *name, size_t nl, const char *value, size_t vl) {
  for (size_t i = 0; i < nl; i++) {
    unsigned char ch = name[i];
    if (ch <= 0x20 || (ch >= 'A' && ch <= 'Z') || ch >= 0x7f || (ch == ':' && i > 0)) return false;
  }
  for (size_t i = 0; i < vl; i++)
    if (value[i] == 0 || value[i] == '\r' || value[i] == '\n') return false;
  if (vl > 0 &&
      (value[0] == ' ' || value[0] == '\t' || value[vl - 1] == ' ' || value[vl - 1] == '\t'))
    return false;
  return nl > 0;
}

static void on_field(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
  struct msg *m = ctx;
  if (!valid_field(name, nl, value, vl)) {
    m->malformed = true;
    return;
  }
  if (name[0] == ':') {
    int k = -1;
    for (int i = 0; i < 5; i++)
      if (is_name(name, nl, pseudo[i])) k = i;
    // Pseudo-headers: known, for this side, once, before the rest, never in trailers.
    if (k < 0 || (k == P_STATUS) == m->request || (m->seen & 1u << k) || m->regular ||
        m->trailers) {
      m->malformed = true;
      return;
    }
    m->seen |= 1u << k;
    m->val[k] = value;
    m->len[k] = vl;
    return;
  }
  m->regular = true;
  // Connection-specific fields have no place in HTTP/2 (§8.2.2).
  if (is_name(name, nl, "connection") || is_name(name, nl, "keep-alive") ||
      is_name(name, nl, "proxy-connection") || is_name(name, nl, "transfer-encoding") ||
      is_name(name, nl, "upgrade") ||
      (is_name(name, nl, "te") && !is_name(value, vl, "trailers"))) {
    m->malformed = true;
    return;
  }
  if (m->n == H2_MAX_HEADERS) {
    m->too_many = true;
    return;
  }
  m->h[m->n++] = (struct h2_header){name, value, nl, vl};
}

static int encode_block(h2_conn *c, uint8_t **out, size_t *len, const char *const *names,
                        const char *const *values, const size_t *vlens, int np,
                        const struct h2_header *h, int n);
static void send_block(h2_conn *c, uint32_t sid, const uint8_t *b, size_t len, bool end);

// Server: answer a request with just a status and END_STREAM, then forget the stream.
static void refuse(h2_conn *c, uint32_t sid, const char *status) {
  const char *names[] = {":status"}, *values[] = {status};
  size_t vl[] = {3};
  uint8_t *b;
  size_t len;
  if (encode_block(c, &b, &len, names, values, vl, 1, NULL, 0) == 0) {
    send_block(c, sid, b, len, true);
    free(b);
  }
  send_reset(c, sid, H2_NO_ERROR);
}

static int parse_status(const struct msg *m) {
  const char *v = m->val[P_STATUS];
  if (!(m->seen & 1u << P_STATUS) || m->len[P_STATUS] != 3) return -1;
  int st = 0;
  for (int i = 0; i < 3; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    st = st * 10 + (v[i] - '0');
  }
  return st >= 100 ? st : -1;
}

// A complete header block on block_sid.
static void end_block(h2_conn *c) {
  uint32_t sid = c->block_sid;
  bool end = c->block_flags & FL_END_STREAM;
  struct stream *s;
  int where = classify(c, sid, &s);
  struct msg *m = &c->msg;
  *m = (struct msg){.request = c->server, .trailers = s && (c->server || s->got_headers)};
  if (!c->hdrbuf && !(c->hdrbuf = malloc(c->cfg.max_header_list))) {
    conn_error(c, H2_INTERNAL_ERROR);
    return;
  }
  // Decoded whatever happens next: the table must stay in step with the peer's.
  int r = hpack_decode(&c->hpack, c->block, c->block_len, c->hdrbuf, c->cfg.max_header_list,
                       on_field, m);
  if (r == HPACK_ERROR) {
    conn_error(c, H2_COMPRESSION_ERROR);
    return;
  }
  bool too_big = r == HPACK_TOO_BIG || m->too_many;
  if (where == ST_CLOSED) {
    // Late frames of a stream we reset are expected; others are a protocol breach.
    if (!recently_reset(c, sid)) conn_error(c, H2_STREAM_CLOSED);
    return;
  }
  if (where == ST_IDLE) {
    // Only a client opens streams, with odd ids (§5.1.1); no push.
    if (!c->server || !(sid & 1)) {
      conn_error(c, H2_PROTOCOL_ERROR);
      return;
    }
    c->last_peer_id = sid;
    if (c->goaway_sent) return ignore_stream(c, sid);  // after our GOAWAY new streams are ignored
    if (c->block_err) return stream_error(c, sid, c->block_err);
    if (too_big) return refuse(c, sid, "431");
    if (m->malformed || !(m->seen & 1u << P_METHOD)) return stream_error(c, sid, H2_PROTOCOL_ERROR);
    bool connect = is_name(m->val[P_METHOD], m->len[P_METHOD], "CONNECT");
    // CONNECT (§8.5): :method and :authority only. Other methods need :scheme and :path.
    if (connect ? (m->seen != (1u << P_METHOD | 1u << P_AUTHORITY) || m->len[P_AUTHORITY] == 0)
                : !(m->seen & 1u << P_SCHEME) || !(m->seen & 1u << P_PATH) || !m->len[P_PATH])
      return stream_error(c, sid, H2_PROTOCOL_ERROR);
    if ((uint32_t)c->nst >= c->cfg.max_streams) return stream_error(c, sid, H2_REFUSED_STREAM);
    if (!connect) return refuse(c, sid, "400");  // a tunnel endpoint serves nothing else
    if (!(s = add_stream(c, sid))) {
      conn_error(c, H2_INTERNAL_ERROR);
      return;
    }
    s->got_headers = true;
    if (c->ev.request)
      c->ev.request(c->ctx, sid, m->val[P_AUTHORITY], m->len[P_AUTHORITY], m->h, m->n);
    if (end && (s = find(c, sid))) remote_end(c, s);
    return;
  }
  // A stream we hold.
  if (s->remote_end) return stream_error(c, sid, H2_STREAM_CLOSED);
  if (c->block_err) return stream_error(c, sid, c->block_err);
  if (too_big || m->malformed) return stream_error(c, sid, H2_PROTOCOL_ERROR);
  if (m->trailers) {  // only as the last thing on the stream, and ignored
    if (!end) return stream_error(c, sid, H2_PROTOCOL_ERROR);
    return remote_end(c, s);
  }
  int status = parse_status(m);
  if (status < 0 || (status < 200 && end)) return stream_error(c, sid, H2_PROTOCOL_ERROR);
  if (status < 200) return;  // interim response: the final one follows
  s->got_headers = true;
  if (c->ev.response) c->ev.response(c->ctx, sid, status, m->h, m->n);
  if (end && (s = find(c, sid))) remote_end(c, s);
}

// Append a HEADERS or CONTINUATION payload (padding and priority removed) to the block.
static void add_fragment(h2_conn *c, const uint8_t *p, size_t n) {
  if (c->block_len + n > CTRL_MAX) {
    conn_error(c, H2_ENHANCE_YOUR_CALM);
    return;
  }
  if (c->block_len + n > c->block_cap) {
    size_t cap = c->block_cap ? c->block_cap : 1024;
    while (cap < c->block_len + n) cap *= 2;
    uint8_t *b = realloc(c->block, cap);
    if (!b) {
      conn_error(c, H2_INTERNAL_ERROR);
      return;
    }
    c->block = b;
    c->block_cap = cap;
  }
  if (n) memcpy(c->block + c->block_len, p, n);
  c->block_len += n;
  if (c->fflags & FL_END_HEADERS) {
    c->in_block = false;
    end_block(c);
  }
}

// ---- held frames -------------------------------------------------------------------
static void on_headers(h2_conn *c, const uint8_t *p, uint32_t len) {
  uint32_t pad = 0, skip = 0;
  if (c->fflags & FL_PADDED) {
    if (len < 1) {
      conn_error(c, H2_PROTOCOL_ERROR);
      return;
    }
    pad = p[0];
    skip = 1;
  }
  c->in_block = true;
  c->block_sid = c->fsid;
  c->block_flags = c->fflags;
  c->block_len = 0;
  c->block_err = 0;
  if (c->fflags & FL_PRIORITY) {
    if (len < skip + 5) {
      conn_error(c, H2_FRAME_SIZE_ERROR);
      return;
    }
    // A stream cannot depend on itself (§5.3.1).
    if ((get32(p + skip) & MAX_STREAM_ID) == c->fsid) c->block_err = H2_PROTOCOL_ERROR;
    skip += 5;
  }
  if (skip + pad > len) {
    conn_error(c, H2_PROTOCOL_ERROR);
    return;
  }
  add_fragment(c, p + skip, len - skip - pad);
}

static void on_settings(h2_conn *c, const uint8_t *p, uint32_t len) {
  if (c->fsid != 0) {
    conn_error(c, H2_PROTOCOL_ERROR);
    return;
  }
  if (c->fflags & FL_ACK) {
    if (len != 0) conn_error(c, H2_FRAME_SIZE_ERROR);
    return;
  }
  if (len % 6) {
    conn_error(c, H2_FRAME_SIZE_ERROR);
    return;
  }
  bool opened = false;
  for (uint32_t i = 0; i < len; i += 6) {
    uint16_t id = p[i] << 8 | p[i + 1];
    uint32_t v = get32(p + i + 2);
    switch (id) {
      case S_ENABLE_PUSH:
        if (v > 1 || (v == 1 && !c->server)) return (void)conn_error(c, H2_PROTOCOL_ERROR);
        break;
      case S_MAX_STREAMS:
        c->peer_max_streams = v;
        break;
      case S_INITIAL_WINDOW: {
        if (v > MAX_WINDOW) return (void)conn_error(c, H2_FLOW_CONTROL_ERROR);
        int64_t delta = (int64_t)v - c->peer_initial_window;
        for (int k = 0; k < c->nst; k++) {
          struct stream *s = c->st[k];
          if (s->send_win + delta > MAX_WINDOW) return (void)conn_error(c, H2_FLOW_CONTROL_ERROR);
          if (s->send_win <= 0 && s->send_win + delta > 0) opened = true;
          s->send_win += delta;
        }
        c->peer_initial_window = v;
        break;
      }
      case S_MAX_FRAME:
        if (v < DEFAULT_FRAME || v > MAX_FRAME_LIMIT) return (void)conn_error(c, H2_PROTOCOL_ERROR);
        c->peer_max_frame = v;
        break;
      case S_MAX_HEADER_LIST:
        c->peer_max_list = v;
        break;
      default:  // the table size (we never index) and unknown settings
        break;
    }
  }
  c->got_settings = true;
  if (!reply_room(c)) return;
  frame(c, 0, F_SETTINGS, FL_ACK, 0);
  if (opened && c->ev.writable) c->ev.writable(c->ctx, 0);
}

static void on_window(h2_conn *c, const uint8_t *p, uint32_t len) {
  if (len != 4) {
    conn_error(c, H2_FRAME_SIZE_ERROR);
    return;
  }
  uint32_t inc = get32(p) & MAX_WINDOW;
  if (c->fsid == 0) {
    if (inc == 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
    if (c->send_win + inc > MAX_WINDOW) return (void)conn_error(c, H2_FLOW_CONTROL_ERROR);
    bool opened = c->send_win <= 0;
    c->send_win += inc;
    if (opened && c->ev.writable) c->ev.writable(c->ctx, 0);
    return;
  }
  struct stream *s;
  int where = classify(c, c->fsid, &s);
  if (where == ST_IDLE) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (where == ST_CLOSED) return;  // may cross our END_STREAM or reset
  if (inc == 0) return stream_error(c, s->id, H2_PROTOCOL_ERROR);
  if (s->send_win + inc > MAX_WINDOW) return stream_error(c, s->id, H2_FLOW_CONTROL_ERROR);
  bool opened = s->send_win <= 0;
  s->send_win += inc;
  if (opened && !s->local_end && c->ev.writable) c->ev.writable(c->ctx, s->id);
}

static void on_rst(h2_conn *c, const uint8_t *p, uint32_t len) {
  if (c->fsid == 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (len != 4) return (void)conn_error(c, H2_FRAME_SIZE_ERROR);
  struct stream *s;
  int where = classify(c, c->fsid, &s);
  if (where == ST_IDLE) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (where == ST_CLOSED) return;
  remove_stream(c, c->fsid);
  if (c->ev.closed) c->ev.closed(c->ctx, c->fsid, get32(p), true);
}

static void on_ping(h2_conn *c, const uint8_t *p, uint32_t len) {
  if (len != 8) return (void)conn_error(c, H2_FRAME_SIZE_ERROR);
  if (c->fsid != 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  uint64_t v = (uint64_t)get32(p) << 32 | get32(p + 4);
  if (!(c->fflags & FL_ACK)) {
    if (!reply_room(c)) return;
    uint8_t *q = frame(c, 8, F_PING, FL_ACK, 0);
    if (q) memcpy(q, p, 8);
    return;
  }
  if (!c->ping_out || v != c->ping_payload) return;  // not ours: ignored
  c->ping_out = false;
  if (c->ev.pong) c->ev.pong(c->ctx, v);
}

static void on_goaway(h2_conn *c, const uint8_t *p, uint32_t len) {
  if (c->fsid != 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (len < 8) return (void)conn_error(c, H2_FRAME_SIZE_ERROR);
  uint32_t last = get32(p) & MAX_STREAM_ID, code = get32(p + 4);
  c->goaway_recv = true;
  // Our streams above `last` were never processed: they may be retried elsewhere.
  for (int i = c->nst - 1; i >= 0; i--) {
    if (i >= c->nst) continue;  // an event removed several
    uint32_t id = c->st[i]->id;
    if ((id & 1) != !c->server || id <= last) continue;
    remove_stream(c, id);
    if (c->ev.closed) c->ev.closed(c->ctx, id, H2_REFUSED_STREAM, true);
  }
  if (c->ev.goaway) c->ev.goaway(c->ctx, last, code);
}

static void on_priority(h2_conn *c, const uint8_t *p, uint32_t len) {
  if (c->fsid == 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (len != 5) return stream_error(c, c->fsid, H2_FRAME_SIZE_ERROR);
  if ((get32(p) & MAX_STREAM_ID) == c->fsid) return stream_error(c, c->fsid, H2_PROTOCOL_ERROR);
}

// A held frame is complete.
static void end_frame(h2_conn *c) {
  const uint8_t *p = c->fbuf;
  uint32_t len = c->flen;
  switch (c->ftype) {
    case F_HEADERS:
      return on_headers(c, p, len);
    case F_CONT:
      return add_fragment(c, p, len);
    case F_SETTINGS:
      return on_settings(c, p, len);
    case F_WINDOW:
      return on_window(c, p, len);
    case F_RST:
      return on_rst(c, p, len);
    case F_PING:
      return on_ping(c, p, len);
    case F_GOAWAY:
      return on_goaway(c, p, len);
    case F_PRIORITY:
      return on_priority(c, p, len);
  }
}

// ---- DATA, as it arrives -----------------------------------------------------------
// Checks at the frame header: windows, stream state. Sets whether the payload
// is delivered or dropped.
static void start_data(h2_conn *c) {
  if (c->fsid == 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (c->flen > c->recv_win) return (void)conn_error(c, H2_FLOW_CONTROL_ERROR);
  if ((c->fflags & FL_PADDED) && c->flen == 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  c->recv_win -= c->flen;
  c->dpad = 0;
  c->ddelivered = 0;
  c->ddeliver = false;
  struct stream *s;
  int where = classify(c, c->fsid, &s);
  if (where == ST_IDLE) return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (where == ST_CLOSED) {
    if (!recently_reset(c, c->fsid)) stream_error(c, c->fsid, H2_STREAM_CLOSED);
    return;
  }
  if (s->remote_end) return stream_error(c, s->id, H2_STREAM_CLOSED);
  if (!s->got_headers) return stream_error(c, s->id, H2_PROTOCOL_ERROR);  // data before response
  if (c->flen > s->recv_win) return stream_error(c, s->id, H2_FLOW_CONTROL_ERROR);
  s->recv_win -= c->flen;
  c->ddeliver = true;
}

static void data_chunk(h2_conn *c, const uint8_t *p, size_t n) {
  if (c->fpos == 0 && (c->fflags & FL_PADDED)) {
    c->dpad = p[0];
    if (c->dpad >= c->flen) return (void)conn_error(c, H2_PROTOCOL_ERROR);
    p++, n--;
    c->fpos++;  // the caller adds the rest
  }
  size_t data_end = c->flen - c->dpad;  // padding follows the data
  if (c->fpos >= data_end) return;
  if (n > data_end - c->fpos) n = data_end - c->fpos;
  if (n == 0 || !c->ddeliver) return;
  if (!find(c, c->fsid)) {  // reset by the owner during an earlier chunk
    c->ddeliver = false;
    return;
  }
  c->ddelivered += n;
  if (c->ev.data) c->ev.data(c->ctx, c->fsid, p, n);
}

static void end_data(h2_conn *c) {
  struct stream *s = c->ddeliver ? find(c, c->fsid) : NULL;
  // Everything not handed to the owner (padding, dropped payload) is given back now.
  give_back(c, s, c->flen - c->ddelivered);
  if (s && (c->fflags & FL_END_STREAM) && (s = find(c, c->fsid))) remote_end(c, s);
}

// ---- the frame reader ----------------------------------------------------------------
// A frame header is complete.
static void start_frame(h2_conn *c) {
  const uint8_t *h = c->fh;
  c->flen = (uint32_t)h[0] << 16 | h[1] << 8 | h[2];
  c->ftype = h[3];
  c->fflags = h[4];
  c->fsid = get32(h + 5) & MAX_STREAM_ID;
  c->fpos = 0;
  if (c->flen > c->cfg.max_frame) return (void)conn_error(c, H2_FRAME_SIZE_ERROR);
  // The first frame is the peer's SETTINGS (§3.4); a header block is continued
  // by CONTINUATION frames of its stream and nothing else (§6.10).
  if (!c->got_settings && (c->ftype != F_SETTINGS || (c->fflags & FL_ACK)))
    return (void)conn_error(c, H2_PROTOCOL_ERROR);
  if (c->in_block != (c->ftype == F_CONT) || (c->in_block && c->fsid != c->block_sid))
    return (void)conn_error(c, H2_PROTOCOL_ERROR);
  switch (c->ftype) {
    case F_DATA:
      return start_data(c);
    case F_PUSH:  // we never allow push
      return (void)conn_error(c, H2_PROTOCOL_ERROR);
    case F_HEADERS:
    case F_CONT:
      if (c->fsid == 0) return (void)conn_error(c, H2_PROTOCOL_ERROR);
      break;
  }
  if (c->ftype > F_CONT) return;  // unknown types are skipped
  if (c->flen > CTRL_MAX) return (void)conn_error(c, H2_ENHANCE_YOUR_CALM);
  if (c->flen > c->fbuf_cap) {
    uint8_t *b = realloc(c->fbuf, c->flen);
    if (!b) return (void)conn_error(c, H2_INTERNAL_ERROR);
    c->fbuf = b;
    c->fbuf_cap = c->flen;
  }
}

static void finish_frame(h2_conn *c) {
  c->fh_len = 0;
  if (c->ftype == F_DATA)
    end_data(c);
  else if (c->ftype <= F_CONT)
    end_frame(c);
}

int h2_recv(h2_conn *c, const uint8_t *p, size_t n) {
  while (n > 0 && !c->failed) {
    if (c->preface_left > 0) {
      size_t off = PREFACE_LEN - c->preface_left, k = n < c->preface_left ? n : c->preface_left;
      if (memcmp(p, preface + off, k) != 0) return conn_error(c, H2_PROTOCOL_ERROR);
      c->preface_left -= k;
      p += k, n -= k;
      continue;
    }
    if (c->fh_len < 9) {
      size_t k = 9 - c->fh_len < n ? 9 - c->fh_len : n;
      memcpy(c->fh + c->fh_len, p, k);
      c->fh_len += k;
      p += k, n -= k;
      if (c->fh_len < 9) break;
      start_frame(c);
      if (!c->failed && c->flen == 0) finish_frame(c);
      continue;
    }
    size_t k = c->flen - c->fpos < n ? c->flen - c->fpos : n;
    if (c->ftype == F_DATA) {
      size_t before = c->fpos;
      data_chunk(c, p, k);
      c->fpos = before + k;
    } else if (c->ftype <= F_CONT) {
      memcpy(c->fbuf + c->fpos, p, k);
      c->fpos += k;
    } else {
      c->fpos += k;
    }
    p += k, n -= k;
    if (c->fpos == c->flen && !c->failed) finish_frame(c);
  }
  return c->failed ? (int)c->fail_code : 0;
}

// ---- sending -----------------------------------------------------------------------
// A header block: np pseudo-headers, then the owner's fields. 0, or H2_E_ARG
// when over the peer's list size, H2_E_DEAD when out of memory.
static int encode_block(h2_conn *c, uint8_t **out, size_t *len, const char *const *names,
                        const char *const *values, const size_t *vlens, int np,
                        const struct h2_header *h, int n) {
  size_t cap = 0, list = 0;
  for (int i = 0; i < np; i++) cap += strlen(names[i]) + vlens[i] + 12;
  for (int i = 0; i < n; i++) cap += h[i].name_len + h[i].value_len + 12;
  list = cap;  // at least as large as the RFC size minus its 32 per field
  if (list + 20 * (size_t)(np + n) > c->peer_max_list) return H2_E_ARG;
  uint8_t *b = malloc(cap);
  if (!b) return H2_E_DEAD;
  size_t k = 0;
  for (int i = 0; i < np + n; i++) {
    const char *nm = i < np ? names[i] : h[i - np].name, *v = i < np ? values[i] : h[i - np].value;
    size_t nl = i < np ? strlen(nm) : h[i - np].name_len,
           vl = i < np ? vlens[i] : h[i - np].value_len;
    if (i >= np && !valid_field(nm, nl, v, vl)) {
      free(b);
      return H2_E_ARG;
    }
    bool sensitive = is_name(nm, nl, "authorization") || is_name(nm, nl, "proxy-authorization");
    size_t w = hpack_encode(b + k, cap - k, nm, nl, v, vl, sensitive);
    if (w == 0) {  // cannot happen: cap counts the worst case
      free(b);
      return H2_E_ARG;
    }
    k += w;
  }
  *out = b;
  *len = k;
  return 0;
}

// HEADERS, then CONTINUATION frames while the block is larger than the peer's frames.
static void send_block(h2_conn *c, uint32_t sid, const uint8_t *b, size_t len, bool end) {
  uint8_t type = F_HEADERS, flags = end ? FL_END_STREAM : 0;
  do {
    size_t k = len < c->peer_max_frame ? len : c->peer_max_frame;
    uint8_t *p = frame(c, k, type, flags | (k == len ? FL_END_HEADERS : 0), sid);
    if (!p) return;
    memcpy(p, b, k);
    b += k, len -= k;
    type = F_CONT;
    flags = 0;
  } while (len > 0);
}

int64_t h2_open(h2_conn *c, const char *authority, const struct h2_header *h, int n) {
  if (c->failed) return H2_E_DEAD;
  if (c->server) return H2_E_STATE;
  if (c->goaway_sent || c->goaway_recv || c->next_id > MAX_STREAM_ID ||
      (uint32_t)c->nst >= min32(c->cfg.max_streams, c->peer_max_streams))
    return H2_E_BUSY;
  size_t alen = strlen(authority);
  if (alen == 0 || !valid_field("x", 1, authority, alen)) return H2_E_ARG;
  const char *names[] = {":method", ":authority"}, *values[] = {"CONNECT", authority};
  size_t vl[] = {7, alen};
  uint8_t *b;
  size_t len;
  int r = encode_block(c, &b, &len, names, values, vl, 2, h, n);
  if (r < 0) return r;
  uint32_t id = c->next_id;
  struct stream *s = add_stream(c, id);
  if (!s) {
    free(b);
    return H2_E_DEAD;
  }
  c->next_id += 2;
  s->sent_headers = true;
  send_block(c, id, b, len, false);
  free(b);
  return c->failed ? H2_E_DEAD : (int64_t)id;
}

int h2_respond(h2_conn *c, uint32_t id, int status, const struct h2_header *h, int n) {
  if (c->failed) return H2_E_DEAD;
  struct stream *s = find(c, id);
  if (!c->server || !s || s->sent_headers) return H2_E_STATE;
  if (status < 200 || status > 599) return H2_E_ARG;
  char st[4] = {'0' + status / 100, '0' + status / 10 % 10, '0' + status % 10, 0};
  const char *names[] = {":status"}, *values[] = {st};
  size_t vl[] = {3};
  uint8_t *b;
  size_t len;
  int r = encode_block(c, &b, &len, names, values, vl, 1, h, n);
  if (r < 0) return r;
  bool ok = status < 300;  // anything else refuses the tunnel and ends the stream
  send_block(c, id, b, len, !ok);
  free(b);
  s->sent_headers = true;
  if (!ok) {
    if (s->remote_end)
      remove_stream(c, id);
    else
      send_reset(c, id, H2_NO_ERROR);  // the rest of the request is not wanted (§8.1)
  }
  return c->failed ? H2_E_DEAD : 0;
}

static int64_t room(const h2_conn *c, const struct stream *s) {
  int64_t r = c->send_win < s->send_win ? c->send_win : s->send_win;
  return r > 0 ? r : 0;
}

size_t h2_send_room(h2_conn *c, uint32_t id) {
  struct stream *s = find(c, id);
  return s && !c->failed && !s->local_end && s->sent_headers ? (size_t)room(c, s) : 0;
}

ssize_t h2_send(h2_conn *c, uint32_t id, const uint8_t *p, size_t n, bool end) {
  if (c->failed) return H2_E_DEAD;
  struct stream *s = find(c, id);
  if (!s || s->local_end || !s->sent_headers) return H2_E_STATE;
  size_t take = (size_t)room(c, s) < n ? (size_t)room(c, s) : n;
  if (take == 0 && n > 0) return 0;
  bool fin = end && take == n;
  size_t left = take;
  do {
    size_t k = left < c->peer_max_frame ? left : c->peer_max_frame;
    uint8_t *q = frame(c, k, F_DATA, fin && k == left ? FL_END_STREAM : 0, id);
    if (!q) return H2_E_DEAD;
    if (k) memcpy(q, p, k);
    p += k, left -= k;
  } while (left > 0);
  c->send_win -= take;
  s->send_win -= take;
  if (fin) {
    s->local_end = true;
    maybe_done(c, s, false);
  }
  return (ssize_t)take;
}

int h2_reset(h2_conn *c, uint32_t id, uint32_t code) {
  if (c->failed) return H2_E_DEAD;
  if (!find(c, id)) return H2_E_STATE;
  send_reset(c, id, code);
  return 0;
}

void h2_ping(h2_conn *c, uint64_t payload) {
  if (c->failed) return;
  uint8_t *p = frame(c, 8, F_PING, 0, 0);
  if (!p) return;
  put32(p, payload >> 32);
  put32(p + 4, (uint32_t)payload);
  c->ping_payload = payload;
  c->ping_out = true;
}

uint64_t h2_ping_pending(const h2_conn *c) {
  return c->ping_out ? c->ping_payload : 0;
}

void h2_goaway(h2_conn *c, uint32_t code) {
  if (c->failed || c->goaway_sent) return;
  c->goaway_sent = true;
  send_goaway(c, code);
}

int h2_set_user(h2_conn *c, uint32_t id, void *user) {
  struct stream *s = find(c, id);
  if (!s) return H2_E_STATE;
  s->user = user;
  return 0;
}

void *h2_user(h2_conn *c, uint32_t id) {
  struct stream *s = find(c, id);
  return s ? s->user : NULL;
}

int h2_stream_count(const h2_conn *c) {
  return c->nst;
}

bool h2_peer_settings(const h2_conn *c) {
  return c->got_settings;
}
