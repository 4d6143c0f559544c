// QUIC client Initial packets (RFC 9000 17.2.2) opened with the keys every
// observer can derive from the Destination Connection ID (RFC 9001 5.2 for
// v1, RFC 9369 3.3 for v2): what a router needs to read the ClientHello's
// SNI. No JS here (mod_quic.c binds it); crypto is mbedTLS's.
#ifndef UGATE_QUIC_H
#define UGATE_QUIC_H

#include <stddef.h>
#include <stdint.h>

#define UG_QUIC_V1 0x00000001u
#define UG_QUIC_V2 0x6b3343cfu
#define UG_QUIC_MAX_CID 20

typedef enum {
  UG_QUIC_OK = 0,
  UG_QUIC_NOT_QUIC,     // not a QUIC long header (short header, fixed bit clear, too short)
  UG_QUIC_NOT_INITIAL,  // a long header packet of another type (0-RTT, Handshake, Retry)
  UG_QUIC_VERSION,      // a version other than v1 and v2 (or version negotiation)
  UG_QUIC_MALFORMED,    // a field out of range (connection ID over 20 bytes, reserved bits set)
  UG_QUIC_TRUNCATED,    // a length field points past the datagram
  UG_QUIC_BAD_TAG,      // the AEAD tag does not verify (not a client Initial, or damaged)
} ug_quic_err;

// One opened Initial packet.
typedef struct {
  uint32_t version;
  uint8_t dcid_len;
  uint8_t dcid[UG_QUIC_MAX_CID];
  uint64_t pn;        // packet number (truncated, as sent: Initials start at 0)
  size_t frames_len;  // plaintext frames, written at the caller's out
  size_t packet_len;  // bytes of the datagram this packet used
} ug_quic_initial;

// Open the long header packet at pkt[0..len), writing its plaintext frames
// to out (which needs len bytes at most). A long header packet that is not
// an Initial fills info->version and ->packet_len (so a caller can step over
// it) and answers UG_QUIC_NOT_INITIAL.
ug_quic_err ug_quic_open_initial(const uint8_t *pkt, size_t len, uint8_t *out,
                                 ug_quic_initial *info);

// Text for an error code ("not a QUIC long header packet", ...).
const char *ug_quic_strerror(ug_quic_err err);

#endif
