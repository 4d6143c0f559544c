// Batched UDP sends with UDP_SEGMENT (see udp_send.h).
#define _GNU_SOURCE
#include "udp_send.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

// musl toolchains ship without the kernel headers that define these.
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define GSO_SEGS 64      // datagrams per UDP_SEGMENT send (the kernel's limit before 6.9)
#define GSO_BYTES 65000  // and their bytes: one IPv4 packet's worth, headers aside

// The kernel knows UDP_SEGMENT (4.18+; an older one would ignore the cmsg).
static bool gso_ok;

// A kernel before 4.18 would not refuse the control message but ignore it,
// and send a run as one big datagram: the socket option of the same name,
// which came with it, tells.
void udp_tx_init(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  int v = 0;
  socklen_t len = sizeof v;
  gso_ok = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
  close(fd);
}

void udp_tx_reset(udp_tx *t) {
  t->n = t->niov = 0;
}

bool udp_tx_full(const udp_tx *t) {
  return t->n >= UDP_TX_BATCH;
}

void udp_tx_add(udp_tx *t, bool gso, bool same_dst, void *name, socklen_t name_len, uint8_t *hdr,
                size_t hlen, uint8_t *buf, size_t len) {
  size_t seg = hlen + len;
  int last = t->n - 1;
  if (gso && gso_ok && same_dst && last >= 0 && !t->meta[last].closed && seg <= t->meta[last].seg &&
      t->meta[last].n < GSO_SEGS && t->meta[last].bytes + seg <= GSO_BYTES) {
    // The last message's iovecs end the array: this one's follow them.
    if (hlen) t->iovs[t->niov++] = (struct iovec){hdr, hlen};
    t->iovs[t->niov++] = (struct iovec){buf, len};
    t->msgs[last].msg_hdr.msg_iovlen += hlen ? 2 : 1;
    t->meta[last].n++;
    t->meta[last].bytes += seg;
    t->meta[last].payload += len;
    t->meta[last].closed = seg < t->meta[last].seg;
    return;
  }
  struct iovec *iov = &t->iovs[t->niov];
  if (hlen) t->iovs[t->niov++] = (struct iovec){hdr, hlen};
  t->iovs[t->niov++] = (struct iovec){buf, len};
  t->msgs[t->n].msg_hdr = (struct msghdr){
      .msg_name = name, .msg_namelen = name_len, .msg_iov = iov, .msg_iovlen = hlen ? 2 : 1};
  t->msgs[t->n].msg_len = 0;
  t->meta[t->n].seg = seg;
  t->meta[t->n].bytes = seg;
  t->meta[t->n].payload = len;
  t->meta[t->n].n = 1;
  t->meta[t->n].closed = seg == 0;  // a segment size of 0 means no segmenting
  t->n++;
}

// musl's sendmmsg is, on 64-bit targets, a loop of sendmsg: one system call
// per datagram, the very cost a batch is for. The kernel's own reads musl's
// msghdr and cmsghdr right when their padding is zero, as in every one built
// here (compound literals, a zeroed control buffer).
static int sendmmsg_batch(int fd, struct mmsghdr *m, unsigned n, int flags) {
#if LONG_MAX > INT_MAX && defined(SYS_sendmmsg)
  return (int)syscall(SYS_sendmmsg, fd, m, n, flags);
#else
  return sendmmsg(fd, m, n, flags);
#endif
}

// Why a segmented send fails where one datagram at a time may not: no GSO in
// this kernel or on this route (checksum offload, xfrm), a segment above the
// route's MTU (a plain datagram is fragmented instead).
static bool gso_refused(int err) {
  return err == EIO || err == EINVAL || err == EMSGSIZE || err == ENOPROTOOPT || err == EOPNOTSUPP;
}

// Message i's datagrams one by one (after its segmented send was refused).
static void split(udp_tx *t, int fd, int i, udp_tx_result *r) {
  struct msghdr *m = &t->msgs[i].msg_hdr;
  int per = m->msg_iovlen / t->meta[i].n;  // 1, or 2 with a header
  for (int k = 0; k < t->meta[i].n; k++) {
    struct msghdr one = {.msg_name = m->msg_name,
                         .msg_namelen = m->msg_namelen,
                         .msg_iov = m->msg_iov + k * per,
                         .msg_iovlen = per};
    if (sendmsg(fd, &one, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      r->failed++;
      continue;
    }
    r->pk++;
    r->by += one.msg_iov[per - 1].iov_len;
  }
}

// A refused datagram is dropped and counted (UDP has no retry: the
// application's own does).
void udp_tx_send(udp_tx *t, int fd, udp_tx_result *r) {
  *r = (udp_tx_result){0};
  for (int i = 0; i < t->n; i++) {
    if (t->meta[i].n < 2) continue;
    memset(&t->ctrl[i], 0, sizeof t->ctrl[i]);
    struct cmsghdr *c = &t->ctrl[i].align;
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)t->meta[i].seg;
    memcpy(CMSG_DATA(c), &seg, sizeof seg);
    t->msgs[i].msg_hdr.msg_control = t->ctrl[i].buf;
    t->msgs[i].msg_hdr.msg_controllen = sizeof t->ctrl[i].buf;
  }
  for (int i = 0; i < t->n;) {
    int k = sendmmsg_batch(fd, &t->msgs[i], t->n - i, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      if (t->meta[i].n > 1 && gso_refused(errno)) {
        r->gso_refused = true;
        split(t, fd, i, r);
      } else {
        r->failed += t->meta[i].n;
      }
      i++;
      continue;
    }
    for (int j = i; j < i + k; j++) {
      r->pk += t->meta[j].n;
      r->by += t->meta[j].payload;
    }
    i += k;
  }
  udp_tx_reset(t);
}
