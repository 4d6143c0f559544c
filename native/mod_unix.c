// Unix datagram sockets: the syslog socket (/dev/log) ugate logs to.
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ugate.h"

// connectUnixDgram(path): a non-blocking datagram socket connected to path.
// A connected socket lets send() (native.write) report a reader that went
// away (ECONNREFUSED), so the caller can reconnect after logd restarts.
static JSValue js_connect_unix_dgram(JSContext *ctx, JSValueConst this_val, int argc,
                                     JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len;
  const char *path = JS_ToCStringLen(ctx, &len, argv[0]);
  if (!path) return JS_EXCEPTION;
  int ok = len > 0 && len < sizeof sa.sun_path && strlen(path) == len;
  if (ok) memcpy(sa.sun_path, path, len);
  JS_FreeCString(ctx, path);
  if (!ok)
    return JS_ThrowRangeError(ctx, "unix socket path must be 1..%zu bytes", sizeof sa.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ug_throw_errno(ctx, "socket", errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, "connect", e);
  }
  return JS_NewInt32(ctx, fd);
}

static const JSCFunctionListEntry unix_funcs[] = {
    JS_CFUNC_DEF("connectUnixDgram", 1, js_connect_unix_dgram),
};

ug_exports ug_unix_exports(void) {
  return (ug_exports){unix_funcs, sizeof unix_funcs / sizeof unix_funcs[0]};
}
