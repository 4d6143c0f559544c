// Kernel pipes for splice(2): bytes go socket → pipe → socket without being
// copied through user space. Pipes come from a small pool. The pool, and the
// pipes taken from it, belong to one thread (the relay thread).
#ifndef UGATE_PIPE_H
#define UGATE_PIPE_H

#include <stdbool.h>
#include <stddef.h>

#define PIPE_SIZE (512 * 1024)  // asked of the kernel for every new pipe

struct pipe {
  int prod, cons;  // write end, read end; both -1 when no pipe is held
  size_t data;     // bytes sitting in the pipe
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

#endif
