// Walking the control messages of a received datagram. musl's CMSG_NXTHDR
// compares a size_t with a pointer difference, which clang's -Wsign-compare
// (an error with -Werror) rejects in the cross builds; the comparison is
// right for any message the kernel gives us, so only the warning goes.
#ifndef UGATE_CMSG_H
#define UGATE_CMSG_H

#include <sys/socket.h>

static inline struct cmsghdr *ug_cmsg_next(struct msghdr *m, struct cmsghdr *c) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
  return CMSG_NXTHDR(m, c);
#pragma GCC diagnostic pop
}

#endif
