// Process-level functions: argv, clocks, stdio, files, errno names.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ugate.h"

static int g_argc;
static char **g_argv;

void ug_sys_set_argv(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
}

static JSValue js_errno_name(UG_JS_PARAMS) {
  int err;
  if (JS_ToInt32(ctx, &err, argv[0])) return JS_EXCEPTION;
  char spare[UG_ERRNO_NAME_MAX];
  return JS_NewString(ctx, ug_errno_name(err, spare));
}

static JSValue js_strerror(UG_JS_PARAMS) {
  int err;
  if (JS_ToInt32(ctx, &err, argv[0])) return JS_EXCEPTION;
  return JS_NewString(ctx, strerror(err));
}

JSValue ug_sys_argv(JSContext *ctx) {
  JSValue a = JS_NewArray(ctx);
  for (int i = 1; i < g_argc; i++)
    JS_SetPropertyUint32(ctx, a, i - 1, JS_NewString(ctx, g_argv[i]));
  return a;
}

static JSValue js_wall_clock(UG_JS_PARAMS) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return JS_NewFloat64(ctx, ts.tv_sec * 1e3 + (double)(ts.tv_nsec / 1000000));
}

static JSValue write_all(JSContext *ctx, int fd, JSValueConst v) {
  size_t len;
  const char *s = JS_ToCStringLen(ctx, &len, v);
  if (!s) return JS_EXCEPTION;
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, s + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // nowhere to report a broken stderr; drop the rest
    off += n;
  }
  JS_FreeCString(ctx, s);
  return JS_UNDEFINED;
}

static JSValue js_write_stderr(UG_JS_PARAMS) {
  return write_all(ctx, 2, argv[0]);
}

static JSValue js_write_stdout(UG_JS_PARAMS) {
  return write_all(ctx, 1, argv[0]);
}

static JSValue js_read_file(UG_JS_PARAMS) {
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  JS_FreeCString(ctx, path);
  if (fd < 0) return ug_throw_errno(ctx, "open", errno);
  struct stat st;
  if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
    int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
    close(fd);
    return ug_throw_errno(ctx, "read", e);
  }
  size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) {
    close(fd);
    return JS_ThrowOutOfMemory(ctx);
  }
  for (;;) {
    if (len == cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        close(fd);
        return JS_ThrowOutOfMemory(ctx);
      }
      buf = nb;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return ug_throw_errno(ctx, "read", e);
    }
    if (n == 0) break;
    len += n;
  }
  close(fd);
  JSValue s = JS_ToBool(ctx, argv[1]) ? JS_NewArrayBufferCopy(ctx, (uint8_t *)buf, len)
                                      : JS_NewStringLen(ctx, buf, len);
  free(buf);
  return s;
}

static JSValue js_fd_count(UG_JS_PARAMS) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return ug_throw_errno(ctx, "opendir", errno);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return JS_NewInt32(ctx, n - 1);  // minus the directory's own fd
}

static JSValue js_peak_rss(UG_JS_PARAMS) {
  FILE *f = fopen("/proc/self/status", "re");
  if (!f) return ug_throw_errno(ctx, "fopen", errno);
  char line[256];
  long kib = -1;
  // strtol, not sscanf: scanf would link about 5 KB of libc for this line.
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return JS_NewInt64(ctx, kib);
}

static JSValue js_pid(UG_JS_PARAMS) {
  return JS_NewInt32(ctx, getpid());
}

// writeFile(path, text, mode, exclusive): creates the file with this mode
// (exclusive: fails with EEXIST if it exists, else it is truncated); the mode
// is set again after a truncation, so an existing file does not keep a wider one.
static JSValue js_write_file(UG_JS_PARAMS) {
  size_t len;
  const char *text = JS_ToCStringLen(ctx, &len, argv[1]);
  if (!text) return JS_EXCEPTION;
  int32_t mode;
  if (JS_ToInt32(ctx, &mode, argv[2])) {
    JS_FreeCString(ctx, text);
    return JS_EXCEPTION;
  }
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) {
    JS_FreeCString(ctx, text);
    return JS_EXCEPTION;
  }
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (JS_ToBool(ctx, argv[3]) ? O_EXCL : O_TRUNC);
  int fd = open(path, flags, (mode_t)mode);
  JS_FreeCString(ctx, path);
  const char *call = "open";
  int err = 0;
  if (fd < 0) err = errno;
  if (!err && fchmod(fd, (mode_t)mode) < 0) err = errno, call = "fchmod";
  for (size_t off = 0; !err && off < len;) {
    ssize_t n = write(fd, text + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      err = errno, call = "write";
    else
      off += (size_t)n;
  }
  JS_FreeCString(ctx, text);
  if (fd >= 0 && close(fd) < 0 && !err) err = errno, call = "close";
  return err ? ug_throw_errno(ctx, call, err) : JS_UNDEFINED;
}

static const JSCFunctionListEntry sys_funcs[] = {
    JS_CFUNC_DEF("pid", 0, js_pid),
    JS_CFUNC_DEF("wallClock", 0, js_wall_clock),
    JS_CFUNC_DEF("writeStderr", 1, js_write_stderr),
    JS_CFUNC_DEF("writeStdout", 1, js_write_stdout),
    JS_CFUNC_DEF("readFile", 2, js_read_file),
    JS_CFUNC_DEF("writeFile", 4, js_write_file),
    JS_CFUNC_DEF("fdCount", 0, js_fd_count),
    JS_CFUNC_DEF("peakRssKiB", 0, js_peak_rss),
    JS_CFUNC_DEF("errnoName", 1, js_errno_name),
    JS_CFUNC_DEF("strerror", 1, js_strerror),
};

ug_exports ug_sys_exports(void) {
  return (ug_exports){sys_funcs, sizeof sys_funcs / sizeof sys_funcs[0]};
}
