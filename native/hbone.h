// HBONE tunnels (HTTP/2 CONNECT over mutual TLS) on the relay's engine
// thread: a mesh connection is a socket + a secure transport (TLS) + an
// h2_conn (h2.h); each CONNECT stream is bridged to a plain TCP socket.
// Knows nothing of JS (mod_hbone.c is the JS side): the embedder hands work
// in with the hbone_* calls below (any thread; they post engine jobs) and
// gets reports back in batches through its sink, called on the engine thread.
//
// Bridge of one stream and its socket: socket bytes go to h2_send as far as
// h2_send_room allows (no buffer on that side: the socket waits); DATA goes
// to the socket, and only bytes written are h2_consumed, so a slow socket
// holds the peer back through HTTP/2 flow control. Socket EOF ↔ END_STREAM
// (half-close), socket error or RST ↔ RST_STREAM.
#ifndef UGATE_HBONE_H
#define UGATE_HBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "engine.h"

// ---- the secure transport ------------------------------------------------------------
// What hbone needs of TLS, as function pointers: tls.c in ugate; a plain-TCP
// transport in the C test harness only (ugate never offers unencrypted HBONE).
// Return values are tls.h's: >= 0 or TLS_WANT_READ (-1), TLS_WANT_WRITE (-2),
// TLS_CLOSED (-3: HB_EOF here), TLS_FAILED (-4).
enum { HB_WANT_READ = -1, HB_WANT_WRITE = -2, HB_EOF = -3, HB_FAILED = -4 };

typedef struct hb_security {
  // A transport for the connected socket fd (server or client side). expect:
  // the client's required peer SPIFFE id, or NULL (any id the config trusts).
  void *(*conn_new)(void *cfg, int fd, bool server, const char *expect);
  void (*conn_free)(void *t);
  int (*handshake)(void *t);
  ssize_t (*read)(void *t, uint8_t *buf, size_t cap);
  ssize_t (*write)(void *t, const uint8_t *p, size_t n);
  size_t (*pending)(const void *t);
  const char *(*error)(const void *t);
  const char *(*peer_id)(const void *t);    // SPIFFE id, "" when none
  const char *(*peer_node)(const void *t);  // node id, "" when none
  void (*cfg_ref)(void *cfg);
  void (*cfg_unref)(void *cfg);
  // Reverse tunnels (optional: NULL = not supported): a transport that offers
  // (client) or accepts (server) ALPN HB_ALPN_REVERSE before h2, and the
  // protocol the handshake agreed on.
  void *(*conn_new_reverse)(void *cfg, int fd, bool server, const char *expect);
  const char *(*alpn)(const void *t);
  // Optional (NULL: writes go out as they are made): send what write kept;
  // 0 when all went, HB_WANT_WRITE, HB_FAILED. Called at the end of every
  // flush of the connection's output.
  int (*flush)(void *t);
} hb_security;

// A reverse tunnel (docs/mesh.md): a gate behind NAT dials a public gate and
// offers this ALPN before h2; when the public gate's listener agrees, the
// HTTP/2 roles swap: the public gate (TLS server) is the HTTP/2 client and
// opens CONNECT streams towards the dialing gate, which serves them.
#define HB_ALPN_REVERSE "ugate-rev"

// ---- reports (engine thread → embedder) ------------------------------------------------
enum {
  HB_REQUEST = 1,  // server: a CONNECT came in; answer with hbone_accept / hbone_refuse
  HB_OPENED,       // client: the peer answered the CONNECT (status; 0 = no answer, see reason)
  HB_DONE,         // a stream is over (server: every HB_REQUEST gets one; client: every hbone_open)
  HB_CLOSED,       // a mesh connection is closed (reason; up/down: its bytes; status: streams it
                   // carried; detail: the transport's error, "" when none)
  HB_REVERSE,      // a reverse tunnel: peer_id, peer_node of the other gate. Accepting side:
                   // it asks to be registered (answer with hbone_reverse_accept or
                   // hbone_close); dialing side: the other gate accepted it
};

typedef struct hb_report hb_report;
struct hb_report {
  hb_report *next;
  int kind;
  uint64_t tunnel;     // the mesh connection's id
  uint32_t stream;     // HTTP/2 stream id (0 for a client stream never opened)
  uint64_t tag;        // client: what hbone_open was given
  int status;          // HB_OPENED: the response's :status
  uint64_t up, down;   // HB_DONE, HB_CLOSED: bytes socket → tunnel, tunnel → socket
  const char *reason;  // HB_OPENED/HB_DONE: "eof", "reset", "peer-reset", "tunnel-closed", ...
  int err;             // errno of a socket failure, else 0
  // HB_REQUEST: the request's fields, NUL-terminated, in `text` (freed with the report).
  // HB_REVERSE: peer_id, peer_node. HB_CLOSED: detail.
  const char *authority, *baggage, *forwarded, *traceparent, *peer_id, *peer_node, *detail;
  char peer_addr[64];  // the mesh connection's remote IP:PORT
  char text[];
};

// The embedder's sink: a batch of reports (linked by next), on the engine thread,
// after each round of events. It owns them (free() each).
typedef void hb_sink_fn(hb_report *batch);

// ---- calls from any thread ----------------------------------------------------------------
// Join the engine (relay_engine()); sink receives every report.
void hbone_init(engine *e, hb_sink_fn *sink);

// A mesh connection's keep-alive: a PING every every_ms; no ACK within
// timeout_ms: the connection is dead (reason "ping-timeout"). 0: the defaults
// of hbone_set_timing. Checked on the engine's tick (1 s).
typedef struct {
  int every_ms, timeout_ms;
} hb_ping;

// Server: serve the accepted socket fd with sec/cfg (cfg is referenced while
// the connection lives). reverse_ok: a client may ask for a reverse tunnel
// (HB_REVERSE reports it; nothing is sent on it until the embedder accepts it
// with hbone_reverse_accept, or refuses it with hbone_close). ping: its
// keep-alive (the listener's). Returns the tunnel id.
uint64_t hbone_serve(int fd, const hb_security *sec, void *cfg, const char *peer_addr,
                     bool reverse_ok, hb_ping ping);
// Server: answer stream (tunnel, id)'s CONNECT with 200 and bridge it to fd
// (owned by hbone from here: closed if the stream is gone), after first
// sending `initial` (malloc'd, taken; may be NULL) into the tunnel.
void hbone_accept(uint64_t tunnel, uint32_t id, int fd, uint8_t *initial, size_t len);
// Server: answer it with status (400, 401, 503...) and end it.
void hbone_refuse(uint64_t tunnel, uint32_t id, int status);

typedef struct {
  const char *key;  // pool key: streams with the same key share connections
  struct sockaddr_storage peer;
  socklen_t peer_len;
  int mark;               // SO_MARK of the mesh connection's socket, 0 = none
  const char *expect;     // the peer's SPIFFE id, or NULL
  const char *authority;  // host:port of the CONNECT
  const char *baggage, *forwarded, *traceparent;  // NULL or "" = not sent
  int fd;                                         // the local socket bridged to the stream (taken)
  uint64_t tag;                                   // echoed in the reports
  // Open on this reverse tunnel (the peer dialed us) instead of the pool; 0 = pool.
  uint64_t tunnel;
  hb_ping ping;  // a connection this dials: its keep-alive (not used on a reverse tunnel)
  // The peer's node id (hbone_open: checked after the handshake, "node-mismatch"); NULL = any.
  const char *expect_node;
  // Double HBONE (docs/mesh.md): with via_key, a new connection to the peer is not dialed but
  // runs inside a CONNECT stream (authority via_authority) on a pooled connection to the relay
  // via_peer (its SPIFFE id via_expect, or NULL), so the relay sees only ciphertext. That outer
  // stream reports nothing of its own: its failure closes the inner connection with reason
  // "relay-refused-STATUS" (400, 401, 503; "relay-refused" for others) or "relay-unreachable".
  const char *via_key, *via_expect, *via_authority;
  struct sockaddr_storage via_peer;
  socklen_t via_peer_len;
} hb_open_args;
// Client: open a CONNECT stream on a pooled connection to args->peer (a new
// connection when none has room: 100 streams each; through the relay args->via_peer
// when via_key is set). Strings are copied.
// Reports: HB_OPENED, then HB_DONE.
void hbone_open(const hb_open_args *args, const hb_security *sec, void *cfg);

// Close every mesh connection (their streams are reset); their reports follow.
void hbone_close_all(void);

// Reverse tunnel, the dialing side: fd is connected to a public gate's hbone
// listener; TLS as a client offering HB_ALPN_REVERSE (expect: the public
// gate's SPIFFE id, or NULL), then HTTP/2 as the server: CONNECTs come as
// HB_REQUEST like a listener's. A peer that agrees only on h2 is closed with
// reason "reverse-unsupported"; a GOAWAY(REFUSED_STREAM) with
// "reverse-refused"; HB_REVERSE comes once the other gate accepted it (its
// HTTP/2 SETTINGS arrived). ping: this tunnel's keep-alive. Never closed for
// idleness. Returns the tunnel id; HB_CLOSED when it ends.
uint64_t hbone_reverse(int fd, const hb_security *sec, void *cfg, const char *peer_addr,
                       const char *expect, hb_ping ping);

// Accepting side: the reverse tunnel's HTTP/2 client starts (its preface and
// SETTINGS tell the dialing side it is registered); streams may go on it.
void hbone_reverse_accept(uint64_t tunnel);

// Close one tunnel: GOAWAY with code (H2_NO_ERROR, or H2_REFUSED_STREAM to
// refuse a reverse tunnel), its streams reset; HB_CLOSED says reason (static).
// drain: only the GOAWAY now (no new streams); closed once its streams are over.
void hbone_close(uint64_t tunnel, uint32_t code, bool drain, const char *reason);

// Timing, before use (tests shorten them): the default PING interval and wait
// for its ACK after which the connection is dead (see hb_ping); idle: a
// connection without streams this long is closed; handshake: TLS + SETTINGS
// must be done in this time.
void hbone_set_timing(int ping_ms, int ping_timeout_ms, int idle_ms, int handshake_ms);

// ---- monitoring -------------------------------------------------------------------
typedef struct {
  uint64_t id;
  bool server;   // the TLS role (accepted by a listener)
  bool reverse;  // a reverse tunnel: HTTP/2 roles swapped
  char peer_addr[64];
  char peer_id[160];
  char key[160];                                 // client: the pool key
  int streams;                                   // open now
  uint64_t streams_total, bytes_up, bytes_down;  // up: sent into the tunnel
  double rtt_ms;                                 // last PING round trip, -1 = none yet
  double age_ms;
  const char *state;  // "handshake", "open", "closing"
} hb_conn_stats;

// The live connections as of the engine's last publication (about once a
// second): up to max of them copied into out; returns how many there are.
int hbone_stats(hb_conn_stats *out, int max);

#endif
