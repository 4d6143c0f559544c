// HTTP/2 (RFC 9113) for CONNECT tunnels only, either end client or server, as
// a sans-I/O engine: the owner feeds received bytes to h2_recv, gets events
// through callbacks, and sends whatever h2_output holds. No sockets, no
// clocks, no threads: the same engine runs over TLS records, a TCP socket or a
// test's byte arrays. One connection belongs to one thread.
//
// Streams: a client opens one with h2_open (a CONNECT to an authority); the
// server's owner gets a `request` event and answers with h2_respond. Then
// both ends send DATA with h2_send, END_STREAM is a half-close (h2_send with
// end, the `end` event), RST_STREAM is a reset (h2_reset, the `closed` event).
// Flow control on both levels: the owner passes every byte it got through the
// `data` event to h2_consumed once it has moved it on; only then is the
// window given back to the peer.
#ifndef UGATE_H2_H
#define UGATE_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hpack.h"

// Error codes of RST_STREAM and GOAWAY (RFC 9113 §7).
enum {
  H2_NO_ERROR = 0x0,
  H2_PROTOCOL_ERROR = 0x1,
  H2_INTERNAL_ERROR = 0x2,
  H2_FLOW_CONTROL_ERROR = 0x3,
  H2_SETTINGS_TIMEOUT = 0x4,
  H2_STREAM_CLOSED = 0x5,
  H2_FRAME_SIZE_ERROR = 0x6,
  H2_REFUSED_STREAM = 0x7,
  H2_CANCEL = 0x8,
  H2_COMPRESSION_ERROR = 0x9,
  H2_CONNECT_ERROR = 0xa,
  H2_ENHANCE_YOUR_CALM = 0xb,
};

// What the owner's calls return when they cannot do what was asked.
enum {
  H2_E_STATE = -1,  // no such stream, or not in a state that allows it
  H2_E_BUSY = -2,   // h2_open: the stream limit is reached, or GOAWAY was sent or received
  H2_E_DEAD = -3,   // the connection failed (h2_recv returned an error code)
  H2_E_ARG = -4,    // headers too large for the peer's limits
};

// Our receive side, sent in SETTINGS; defaults are ztunnel's.
struct h2_config {
  uint32_t stream_window;    // SETTINGS_INITIAL_WINDOW_SIZE (4 MiB)
  uint32_t conn_window;      // connection window, raised by a WINDOW_UPDATE (16 MiB)
  uint32_t max_frame;        // SETTINGS_MAX_FRAME_SIZE (1 MiB)
  uint32_t max_streams;      // server: SETTINGS_MAX_CONCURRENT_STREAMS (200);
                             // client: most streams open at once (100)
  uint32_t max_header_list;  // SETTINGS_MAX_HEADER_LIST_SIZE (64 KiB)
};
void h2_config_default(struct h2_config *cfg, bool server);

#define H2_MAX_HEADERS 32  // regular header fields passed to the owner per message

struct h2_header {
  const char *name, *value;
  size_t name_len, value_len;
};

// Events, called from inside h2_recv only. Any may be NULL. In any of them the
// owner may call the h2_* functions (open, respond, send, reset, ...), but
// not h2_free or h2_recv.
struct h2_events {
  // Server: a well-formed CONNECT on stream id, with its other header fields
  // (baggage, forwarded, traceparent, ...). Answer with h2_respond.
  void (*request)(void *ctx, uint32_t id, const char *authority, size_t authority_len,
                  const struct h2_header *h, int n);
  // Client: the final response to the CONNECT on stream id (1xx are skipped).
  void (*response)(void *ctx, uint32_t id, int status, const struct h2_header *h, int n);
  // Payload on stream id; pass n to h2_consumed when it has been moved on.
  void (*data)(void *ctx, uint32_t id, const uint8_t *p, size_t n);
  // The peer half-closed stream id (END_STREAM): no more data events for it.
  void (*end)(void *ctx, uint32_t id);
  // Stream id is gone because of the peer: code H2_NO_ERROR after both ends
  // ended, the peer's RST_STREAM code (remote), or the code of a stream error
  // this end found and sent in RST_STREAM (not remote). Not called for
  // closures the owner's own call completed (h2_reset, h2_send's end after
  // the peer's end): those calls say so themselves.
  void (*closed)(void *ctx, uint32_t id, uint32_t code, bool remote);
  // The send window of stream id (id 0: of the connection) opened again.
  void (*writable)(void *ctx, uint32_t id);
  // The peer sent GOAWAY: streams above last_id were never processed (their
  // `closed` came with H2_REFUSED_STREAM); no new streams.
  void (*goaway)(void *ctx, uint32_t last_id, uint32_t code);
  // The ACK of h2_ping(payload).
  void (*pong)(void *ctx, uint64_t payload);
};

typedef struct h2_conn h2_conn;

// A connection (server: expecting the client preface). Our preface and
// SETTINGS are queued at once. cfg NULL: the defaults. NULL when out of memory.
h2_conn *h2_new(bool server, const struct h2_config *cfg, const struct h2_events *ev, void *ctx);
void h2_free(h2_conn *c);

// Feed received bytes (any split). Returns 0, or the error code of a
// connection error (a GOAWAY with it is queued: send the output, then close).
// Once failed, the connection takes nothing more and h2_recv returns the code.
int h2_recv(h2_conn *c, const uint8_t *p, size_t n);

// Bytes to send: *len of them at the returned pointer (valid until the next
// h2_* call); h2_output_done(n) after n of them were sent. h2_send copies
// payload here: an owner that cannot send stops calling h2_send while *len
// is large (the peer's windows bound it too).
const uint8_t *h2_output(h2_conn *c, size_t *len);
void h2_output_done(h2_conn *c, size_t n);

// Client: a CONNECT to authority (host:port) with extra header fields.
// Returns the stream id (> 0), H2_E_BUSY, H2_E_DEAD or H2_E_ARG.
int64_t h2_open(h2_conn *c, const char *authority, const struct h2_header *h, int n);
// Server: the response to stream id's CONNECT (200: the tunnel is open; any
// other status ends the stream). Returns 0, H2_E_STATE, H2_E_DEAD or H2_E_ARG.
int h2_respond(h2_conn *c, uint32_t id, int status, const struct h2_header *h, int n);
// Queue up to n payload bytes on stream id, as far as both send windows allow;
// with `end`, END_STREAM goes with the last byte once all n are taken (n may
// be 0). Returns the bytes taken (0: wait for `writable`), H2_E_STATE or H2_E_DEAD.
ssize_t h2_send(h2_conn *c, uint32_t id, const uint8_t *p, size_t n, bool end);
// How many bytes h2_send would take on stream id now.
size_t h2_send_room(h2_conn *c, uint32_t id);
// Reset stream id with code (RST_STREAM); it is gone at once. Returns 0 or H2_E_STATE.
int h2_reset(h2_conn *c, uint32_t id, uint32_t code);
// n bytes delivered on stream id have been moved on: give their window back.
// Also for a stream that is gone (the connection window still counts them).
void h2_consumed(h2_conn *c, uint32_t id, size_t n);
// Send a PING; its ACK comes back as the `pong` event with the same payload
// (the owner's clock, so RTT = now - payload).
void h2_ping(h2_conn *c, uint64_t payload);
// Payload of the PING sent and not yet acknowledged, or 0.
uint64_t h2_ping_pending(const h2_conn *c);
// Send GOAWAY(code): streams the peer opens from now on are ignored, h2_open
// is refused; open streams carry on.
void h2_goaway(h2_conn *c, uint32_t code);

// Owner data attached to a stream (NULL when none or no such stream).
int h2_set_user(h2_conn *c, uint32_t id, void *user);
void *h2_user(h2_conn *c, uint32_t id);
// Streams open now (not yet closed both ways or reset).
int h2_stream_count(const h2_conn *c);
// The peer's first SETTINGS (after its preface, for a server) has arrived.
bool h2_peer_settings(const h2_conn *c);

#endif
