// The pipe pool and the splice moves (see pipe.h). No lock: one thread owns them.
#define _GNU_SOURCE
#include "pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define POOL_MAX 64  // idle pipes kept for reuse

static struct pipe pool[POOL_MAX];
static int pooled;
static uint64_t calls;

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

// ---- the two moves ----------------------------------------------------------------
ssize_t splice_to_pipe(int fd, struct pipe *p, size_t max) {
  ssize_t n;
  do {
    n = splice(fd, NULL, p->prod, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    calls++;
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    p->data += n;
    return n;
  }
  if (n == 0) return SPLICE_EOF;
  if (errno == EAGAIN) return SPLICE_WAIT;
  if (errno == EINVAL || errno == ENOSYS) return SPLICE_UNSUPPORTED;
  return SPLICE_ERROR;
}

ssize_t splice_from_pipe(struct pipe *p, int fd) {
  ssize_t n;
  do {
    n = splice(p->cons, NULL, fd, NULL, p->data, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    calls++;
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    p->data -= n;
    return n;
  }
  if (n < 0 && errno == EAGAIN) return SPLICE_WAIT;
  if (n == 0) errno = EPIPE;
  return SPLICE_ERROR;
}

uint64_t splice_calls(void) {
  return calls;
}
