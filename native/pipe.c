// The pipe pool (see pipe.h). No lock: one thread owns it.
#define _GNU_SOURCE
#include "pipe.h"

#include <fcntl.h>
#include <unistd.h>

#define POOL_MAX 64  // idle pipes kept for reuse

static struct pipe pool[POOL_MAX];
static int pooled;

bool pipe_get(struct pipe *p) {
  if (pooled > 0) {
    *p = pool[--pooled];
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return false;
  fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE);  // a smaller pipe still works
  *p = (struct pipe){.prod = fds[1], .cons = fds[0], .data = 0};
  return true;
}

void pipe_kill(struct pipe *p) {
  close(p->cons);
  close(p->prod);
  *p = PIPE_NONE;
}

void pipe_put(struct pipe *p) {
  if (!pipe_held(p)) return;
  if (p->data > 0 || pooled == POOL_MAX) return pipe_kill(p);
  pool[pooled++] = *p;
  *p = PIPE_NONE;
}

void pipe_pool_drain(void) {
  while (pooled > 0) pipe_kill(&pool[--pooled]);
}

int pipe_pool_size(void) {
  return pooled;
}
