// Sending a batch of UDP datagrams in one system call, shared by the UDP
// flow engine (udp.c) and the SOCKS5 UDP relays (socks_udp.c): consecutive
// datagrams to one destination of the same size (the last may be shorter)
// become one message with UDP_SEGMENT (GSO), so the kernel routes, filters
// and queues them once and splits them at the device; others go one per
// message; all messages leave in one sendmmsg. A refused segmented send goes
// again one datagram at a time, and the caller is told so that this
// direction stops segmenting.
#ifndef UGATE_UDP_SEND_H
#define UGATE_UDP_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDP_TX_BATCH 64  // datagrams per batch

// A batch being built: each user has its own (no sharing across threads).
typedef struct {
  struct mmsghdr msgs[UDP_TX_BATCH];
  struct iovec iovs[2 * UDP_TX_BATCH];  // a datagram with a header takes two
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl[UDP_TX_BATCH];
  struct {
    size_t seg;      // bytes per datagram (header included): the first one's
    size_t bytes;    // all datagrams' bytes
    size_t payload;  // what the counters count (no header)
    int n;           // datagrams
    bool closed;     // a shorter one ended it
  } meta[UDP_TX_BATCH];
  int n, niov;
} udp_tx;

// What a send did: datagrams and payload bytes sent, datagrams refused
// (dropped), and whether a segmented send was refused (the caller's
// direction should then send one at a time: gso false in udp_tx_add).
typedef struct {
  uint64_t pk, by, failed;
  bool gso_refused;
} udp_tx_result;

// Probe once (before any send) whether the kernel knows UDP_SEGMENT.
void udp_tx_init(void);
void udp_tx_reset(udp_tx *t);
// Whether a batch holds UDP_TX_BATCH datagrams' messages already (send it first).
bool udp_tx_full(const udp_tx *t);
// Add a datagram: `hdr` (hlen bytes, may be NULL) then `buf` to `name` (NULL
// on a connected socket); the buffers must live until udp_tx_send. same_dst:
// it goes where the previous one went; gso: this direction may segment.
void udp_tx_add(udp_tx *t, bool gso, bool same_dst, void *name, socklen_t name_len, uint8_t *hdr,
                size_t hlen, uint8_t *buf, size_t len);
// Send the batch on fd and reset it; *r gets what happened.
void udp_tx_send(udp_tx *t, int fd, udp_tx_result *r);

#endif
