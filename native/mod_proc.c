// Running a helper program (nft) with input on stdin, collecting its output.
// Synchronous: it is used at start, reload and stop, takes milliseconds, and
// the relay thread keeps moving bytes meanwhile.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ugate.h"

extern char **environ;

#define MAX_ARGS 64
#define MAX_OUTPUT (256 * 1024)

typedef struct {
  char *data;
  size_t len;
} outbuf;

static void append(outbuf *o, const char *p, size_t n) {
  if (o->len + n > MAX_OUTPUT) n = MAX_OUTPUT - o->len;  // keep the head of a flood
  if (n == 0) return;
  char *nd = realloc(o->data, o->len + n);
  if (!nd) return;
  memcpy(nd + o->len, p, n);
  o->data = nd;
  o->len += n;
}

// Feed `in` to the child's stdin while draining stdout and stderr, so a
// child that writes a lot before reading cannot deadlock us.
static void exchange(int fin, int fout, int ferr, const char *in, size_t inlen, outbuf *out,
                     outbuf *err) {
  size_t off = 0;
  if (inlen == 0) {
    close(fin);
    fin = -1;
  }
  while (fout >= 0 || ferr >= 0 || fin >= 0) {
    struct pollfd p[3] = {{fin, POLLOUT, 0}, {fout, POLLIN, 0}, {ferr, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fin >= 0 && p[0].revents) {
      ssize_t n = write(fin, in + off, inlen - off);
      if (n > 0) off += n;
      if (n < 0 && errno != EAGAIN && errno != EINTR) off = inlen;  // child closed stdin
      if (off >= inlen) {
        close(fin);
        fin = -1;
      }
    }
    for (int i = 1; i < 3; i++) {
      int *fd = i == 1 ? &fout : &ferr;
      if (*fd < 0 || !p[i].revents) continue;
      char buf[4096];
      ssize_t n = read(*fd, buf, sizeof buf);
      if (n > 0) {
        append(i == 1 ? out : err, buf, n);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(*fd);
        *fd = -1;
      }
    }
  }
}

// ---- starting a child ------------------------------------------------------------
// A JS array of 1..MAX_ARGS-1 strings → a NULL-terminated argv of malloc'd
// copies (free with free_argv). -1 with an exception pending otherwise.
static int argv_from_js(JSContext *ctx, JSValueConst arr, const char *fn, char *out[MAX_ARGS]) {
  int64_t n;
  memset(out, 0, MAX_ARGS * sizeof *out);
  if (JS_GetLength(ctx, arr, &n) || n < 1 || n >= MAX_ARGS) {
    JS_ThrowRangeError(ctx, "%s: argv must have 1..%d strings", fn, MAX_ARGS - 1);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    JSValue v = JS_GetPropertyUint32(ctx, arr, i);
    const char *a = JS_ToCString(ctx, v);
    JS_FreeValue(ctx, v);
    out[i] = a ? strdup(a) : NULL;
    if (a) JS_FreeCString(ctx, a);
    if (a && !out[i]) JS_ThrowOutOfMemory(ctx);
    if (!out[i]) return -1;
  }
  return 0;
}

static void free_argv(char *args[MAX_ARGS]) {
  for (int i = 0; i < MAX_ARGS; i++) {
    free(args[i]);
    args[i] = NULL;
  }
}

// Start argv[0] (found on PATH) with fds[i] as its fd i for i < n (0 = stdin,
// 1 = stdout, 2 = stderr; the rest are ours, inherited) and an empty signal
// mask: ours blocks the signals the loop's signalfd takes, and a child must
// not keep them blocked. Returns 0 with *pid set, or an errno value.
static int spawn(char *const argv[], const int fds[], int n, pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (int i = 0; i < n; i++) posix_spawn_file_actions_adddup2(&fa, fds[i], i);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
  int rc = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return rc;
}

// The child's exit code, or 128 + the signal that ended it.
static int wait_child(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static JSValue js_run_sync(UG_JS_PARAMS) {
  char *args[MAX_ARGS];
  size_t inlen = 0;
  const char *in = NULL;
  JSValue result = JS_EXCEPTION;
  int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
  outbuf out = {0}, err = {0};
  if (argv_from_js(ctx, argv[0], "runSync", args)) goto done;
  in = JS_IsUndefined(argv[1]) ? NULL : JS_ToCStringLen(ctx, &inlen, argv[1]);
  if (!JS_IsUndefined(argv[1]) && !in) goto done;
  if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
    result = ug_throw_errno(ctx, "pipe2", errno);
    goto done;
  }
  pid_t pid;
  int rc = spawn(args, (int[]){pin[0], pout[1], perr[1]}, 3, &pid);
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  pin[0] = pout[1] = perr[1] = -1;
  if (rc != 0) {
    result = ug_throw_errno(ctx, args[0], rc);
    goto done;
  }
  fcntl(pin[1], F_SETFL, O_NONBLOCK);  // poll decides; a big input must not block the write
  fcntl(pout[0], F_SETFL, O_NONBLOCK);
  fcntl(perr[0], F_SETFL, O_NONBLOCK);
  exchange(pin[1], pout[0], perr[0], in ? in : "", inlen, &out, &err);
  pin[1] = pout[0] = perr[0] = -1;  // exchange closed them
  result = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, result, "code", JS_NewInt32(ctx, wait_child(pid)));
  JS_SetPropertyStr(ctx, result, "stdout", JS_NewStringLen(ctx, out.data ? out.data : "", out.len));
  JS_SetPropertyStr(ctx, result, "stderr", JS_NewStringLen(ctx, err.data ? err.data : "", err.len));
done:
  for (int i = 0; i < 3; i++) {
    int *p = i == 0 ? pin : i == 1 ? pout : perr;
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
  }
  free(out.data);
  free(err.data);
  if (in) JS_FreeCString(ctx, in);
  free_argv(args);
  return result;
}

// ---- the exit command: cleanup that must happen however the process ends --------
// (the nft table: a crash must not leave LAN traffic redirected to a dead port)
static char *exit_argv[MAX_ARGS];
static char *exit_input;

static void clear_exit_command(void) {
  free_argv(exit_argv);
  free(exit_input);
  exit_input = NULL;
}

static JSValue js_set_exit_command(UG_JS_PARAMS) {
  clear_exit_command();
  if (JS_IsNull(argv[0]) || JS_IsUndefined(argv[0])) return JS_UNDEFINED;
  char *args[MAX_ARGS];
  if (argv_from_js(ctx, argv[0], "setExitCommand", args)) {
    free_argv(args);
    return JS_EXCEPTION;
  }
  const char *in = JS_ToCString(ctx, argv[1]);
  char *input = in ? strdup(in) : NULL;
  if (in) JS_FreeCString(ctx, in);
  if (!input) {
    free_argv(args);
    return in ? JS_ThrowOutOfMemory(ctx) : JS_EXCEPTION;
  }
  memcpy(exit_argv, args, sizeof args);
  exit_input = input;
  return JS_UNDEFINED;
}

void ug_proc_run_exit_command(void) {
  if (!exit_argv[0]) return;
  int pin[2];
  if (pipe2(pin, O_CLOEXEC) == 0) {
    pid_t pid;
    int rc = spawn(exit_argv, pin, 1, &pid);
    close(pin[0]);
    size_t len = strlen(exit_input), off = 0;
    while (rc == 0 && off < len) {
      ssize_t w = write(pin[1], exit_input + off, len - off);
      if (w <= 0 && errno != EINTR) break;
      if (w > 0) off += w;
    }
    close(pin[1]);
    if (rc == 0) wait_child(pid);
  }
  clear_exit_command();
}

static const JSCFunctionListEntry proc_funcs[] = {
    JS_CFUNC_DEF("runSync", 2, js_run_sync),
    JS_CFUNC_DEF("setExitCommand", 2, js_set_exit_command),
};

ug_exports ug_proc_exports(void) {
  return (ug_exports){proc_funcs, sizeof proc_funcs / sizeof proc_funcs[0]};
}
