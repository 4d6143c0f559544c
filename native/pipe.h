// Kernel pipes for splice(2): bytes go socket → pipe → socket without being
// copied through user space. Pipes come from a small pool. The pool, and the
// pipes taken from it, belong to one thread (the relay thread).
#ifndef UGATE_PIPE_H
#define UGATE_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PIPE_SIZE (512 * 1024)  // asked of the kernel for every new pipe

struct pipe {
  int prod, cons;  // write end, read end; both -1 when no pipe is held
  uint32_t data;   // bytes sitting in the pipe (at most PIPE_SIZE)
};
#define PIPE_NONE ((struct pipe){.prod = -1, .cons = -1, .data = 0})

static inline bool pipe_held(const struct pipe *p) {
  return p->prod >= 0;
}

// Take a pipe from the pool, or make one. False when out of fds: copy instead.
bool pipe_get(struct pipe *p);
// Give p back: an empty pipe returns to the pool while it has room; one that
// still holds bytes is killed, since they belong to a stream that is gone.
// *p is PIPE_NONE afterwards (nothing happens when no pipe is held).
void pipe_put(struct pipe *p);
// Close p's two ends; *p is PIPE_NONE afterwards.
void pipe_kill(struct pipe *p);
// Close every pooled pipe: idle pipes are only worth keeping while streams come and go.
void pipe_pool_drain(void);
int pipe_pool_size(void);

// ---- splicing: two one-way moves, one splice(2) call each (retried on EINTR) ---------
// What a move returns when it moved no bytes (a byte count is > 0).
enum {
  SPLICE_EOF = 0,           // the socket reached end of stream (socket → pipe only)
  SPLICE_WAIT = -1,         // EAGAIN: nothing can move now; what to wait for is said below
  SPLICE_UNSUPPORTED = -2,  // the socket cannot splice (EINVAL, ENOSYS): copy instead
  SPLICE_ERROR = -3,        // the socket failed; errno says why
};

// Socket → pipe: up to `max` bytes from fd into p (p->data grows).
// SPLICE_WAIT has two meanings, told apart by p->data: with the pipe empty,
// the socket has nothing to read (wait for it to be readable); with bytes in
// the pipe, the pipe may be full (move them out first).
// Returns the bytes moved, SPLICE_EOF, SPLICE_WAIT, SPLICE_UNSUPPORTED or SPLICE_ERROR.
ssize_t splice_to_pipe(int fd, struct pipe *p, size_t max);
// Pipe → socket: as much of p->data as fd takes (p->data shrinks).
// Returns the bytes moved, SPLICE_WAIT (fd is full: wait for it to be
// writable) or SPLICE_ERROR (a socket that takes nothing counts as EPIPE).
ssize_t splice_from_pipe(struct pipe *p, int fd);
// splice(2) calls made by the two moves since the start.
uint64_t splice_calls(void);

#endif
