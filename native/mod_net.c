// Sockets for the handshake phase (TCP, and unix sockets for admin, ubus and syslog),
// and UDP sockets for services JS answers itself (DNS):
// After a route is chosen, relay.c takes the fds over and JS stops touching them.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmsg.h"
#include "ugate.h"

#define READ_MAX (1 << 20)

// Kernel ABI (linux/netfilter_ipv4.h, netfilter_ipv6/ip6_tables.h), spelled
// out because musl toolchains ship without the kernel headers.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

// Numeric IPv4 or IPv6 text → sockaddr; returns its length or 0.
static socklen_t parse_ip(const char *s, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    return sizeof *a4;
  }
  if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    return sizeof *a6;
  }
  return 0;
}

static JSValue addr_to_js(JSContext *ctx, const struct sockaddr_storage *ss) {
  char buf[INET6_ADDRSTRLEN];
  int port = 0, family = 4;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)ss;
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      family = 6;
    }
    port = ntohs(a->sin6_port);
  } else {
    return JS_NULL;
  }
  JSValue o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "addr", JS_NewString(ctx, buf));
  JS_SetPropertyStr(ctx, o, "port", JS_NewInt32(ctx, port));
  JS_SetPropertyStr(ctx, o, "family", JS_NewInt32(ctx, family));
  return o;
}

// JS (host, port) → sockaddr for `what`; returns its length, or 0 with a RangeError thrown.
static socklen_t arg_ip(JSContext *ctx, JSValueConst host_v, int port, int min_port,
                        struct sockaddr_storage *ss, const char *what) {
  const char *host = JS_ToCString(ctx, host_v);
  if (!host) return 0;
  socklen_t sl = port >= min_port && port <= 65535 ? parse_ip(host, port, ss) : 0;
  JS_FreeCString(ctx, host);
  if (!sl) JS_ThrowRangeError(ctx, "%s: not a numeric IP address and port", what);
  return sl;
}

static int arg_fd(JSContext *ctx, JSValueConst v, int *fd) {
  if (JS_ToInt32(ctx, fd, v)) return -1;
  if (*fd < 0) {
    JS_ThrowRangeError(ctx, "bad fd %d", *fd);
    return -1;
  }
  return 0;
}

// A non-blocking socket of `type` for binding to *ss, or -1 with an exception thrown.
// "::" takes IPv4 too (as v4-mapped): one transparent listener serves both
// families. A specific IPv6 address stays IPv6-only.
static int bind_socket(JSContext *ctx, const struct sockaddr_storage *ss, int type) {
  int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ug_throw_errno(ctx, "socket", errno);
    return -1;
  }
  if (ss->ss_family == AF_INET6) {
    int v6only = !IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  return fd;
}

static JSValue js_listen(UG_JS_PARAMS) {
  int port, backlog;
  if (JS_ToInt32(ctx, &port, argv[1]) || JS_ToInt32(ctx, &backlog, argv[2])) return JS_EXCEPTION;
  struct sockaddr_storage ss;
  socklen_t sl = arg_ip(ctx, argv[0], port, 0, &ss, "listen");
  if (!sl) return JS_EXCEPTION;
  int fd = bind_socket(ctx, &ss, SOCK_STREAM);
  if (fd < 0) return JS_EXCEPTION;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per connection.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // transparent: takes TPROXYed connections, each accepted socket's local
  // address being the client's original destination (needs CAP_NET_ADMIN).
  bool transparent = argc > 3 && JS_ToBool(ctx, argv[3]);
  if (transparent && (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) < 0 ||
                      (ss.ss_family == AF_INET6 &&
                       setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one) < 0))) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, "listen: IP_TRANSPARENT", e);
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, "listen", e);
  }
  return JS_NewInt32(ctx, fd);
}

static void set_nodelay(int fd) {
  int one = 1;  // a relay must not add latency to small writes
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static JSValue js_accept(UG_JS_PARAMS) {
  int lfd;
  if (arg_fd(ctx, argv[0], &lfd)) return JS_EXCEPTION;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd;
  do fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EAGAIN || errno == ECONNABORTED) return JS_NULL;
    return ug_throw_errno(ctx, "accept", errno);
  }
  set_nodelay(fd);
  JSValue o = addr_to_js(ctx, &ss);
  if (JS_IsNull(o)) o = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, o, "fd", JS_NewInt32(ctx, fd));
  return o;
}

// acceptBatch(fd, max): up to max connections in one call, until EAGAIN. An
// error throws only when nothing was accepted (else it recurs on the next call).
static JSValue js_accept_batch(UG_JS_PARAMS) {
  int lfd, max;
  if (arg_fd(ctx, argv[0], &lfd) || JS_ToInt32(ctx, &max, argv[1])) return JS_EXCEPTION;
  JSValue a = JS_NewArray(ctx);
  uint32_t n = 0;
  while ((int)n < max) {
    struct sockaddr_storage ss;
    int fd = ug_accept(lfd, &ss);
    if (fd < 0) {
      if (errno == EAGAIN || n > 0) break;
      JS_FreeValue(ctx, a);
      return ug_throw_errno(ctx, "accept", errno);
    }
    JSValue o = addr_to_js(ctx, &ss);
    if (JS_IsNull(o)) o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "fd", JS_NewInt32(ctx, fd));
    JS_SetPropertyUint32(ctx, a, n++, o);
  }
  return a;
}

static JSValue js_connect(UG_JS_PARAMS) {
  int port;
  if (JS_ToInt32(ctx, &port, argv[1])) return JS_EXCEPTION;
  struct sockaddr_storage ss;
  socklen_t sl = arg_ip(ctx, argv[0], port, 1, &ss, "connect");
  if (!sl) return JS_EXCEPTION;
  int mark = 0;
  const char *bind_to = NULL;
  struct sockaddr_storage src;
  socklen_t srcl = 0;
  if (argc > 2 && JS_IsObject(argv[2]) &&
      (ug_opt_int(ctx, argv[2], "mark", &mark) < 0 ||
       ug_opt_string(ctx, argv[2], "bind", &bind_to) < 0))
    return JS_EXCEPTION;
  if (bind_to) {
    srcl = parse_ip(bind_to, 0, &src);
    JS_FreeCString(ctx, bind_to);
    if (!srcl || src.ss_family != ss.ss_family)
      return JS_ThrowRangeError(ctx,
                                "connect: bind address is not a numeric IP of the target's family");
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ug_throw_errno(ctx, "socket", errno);
  const char *step = NULL;
  if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
    step = "setsockopt(SO_MARK)";
  if (!step && srcl && bind(fd, (struct sockaddr *)&src, srcl) < 0) step = "bind";
  if (!step && connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
    step = "connect";
  if (step) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, step, e);
  }
  set_nodelay(fd);
  return JS_NewInt32(ctx, fd);
}

static JSValue js_socket_error(UG_JS_PARAMS) {
  int fd, err = 0;
  socklen_t l = sizeof err;
  if (arg_fd(ctx, argv[0], &fd)) return JS_EXCEPTION;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
  return JS_NewInt32(ctx, err);
}

// keepalive(fd, idleSeconds): TCP keepalive probes after idleSeconds without
// traffic, then every idleSeconds / 3, dead after 3 unanswered. A parked
// connection of relay over SNI is idle for long: this keeps NAT mappings
// alive and tells both ends when the other is gone.
static JSValue js_keepalive(UG_JS_PARAMS) {
  int fd, idle;
  if (arg_fd(ctx, argv[0], &fd) || JS_ToInt32(ctx, &idle, argv[1])) return JS_EXCEPTION;
  if (idle < 3 || idle > 86400)
    return JS_ThrowRangeError(ctx, "keepalive: %d is not 3-86400 s", idle);
  int on = 1, intvl = idle / 3, cnt = 3;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
    return ug_throw_errno(ctx, "setsockopt", errno);
  return JS_UNDEFINED;
}

// read(fd, max) and peek(fd, max): `flags` is the magic, 0 or MSG_PEEK.
static JSValue js_recv(UG_JS_PARAMS, int flags) {
  int fd, max;
  if (arg_fd(ctx, argv[0], &fd) || JS_ToInt32(ctx, &max, argv[1])) return JS_EXCEPTION;
  if (max <= 0 || max > READ_MAX)
    return JS_ThrowRangeError(ctx, "read: max must be 1..%d", READ_MAX);
  uint8_t stackbuf[16384];
  uint8_t *buf = max <= (int)sizeof stackbuf ? stackbuf : malloc(max);
  if (!buf) return JS_ThrowOutOfMemory(ctx);
  ssize_t n;
  do n = recv(fd, buf, max, flags | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  JSValue r;
  if (n >= 0)
    r = JS_NewArrayBufferCopy(ctx, buf, n);
  else if (errno == EAGAIN)
    r = JS_NULL;
  else
    r = ug_throw_errno(ctx, flags & MSG_PEEK ? "peek" : "read", errno);
  if (buf != stackbuf) free(buf);
  return r;
}

static JSValue js_write(UG_JS_PARAMS) {
  int fd;
  const uint8_t *p;
  size_t len;
  if (arg_fd(ctx, argv[0], &fd) || ug_get_bytes(ctx, argv[1], &p, &len)) return JS_EXCEPTION;
  if (len == 0) return JS_NewInt32(ctx, 0);
  ssize_t n;
  do n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? JS_NewInt32(ctx, 0) : ug_throw_errno(ctx, "write", errno);
  return JS_NewInt64(ctx, n);
}

static JSValue js_shutdown(UG_JS_PARAMS) {
  int fd, how;
  if (arg_fd(ctx, argv[0], &fd) || JS_ToInt32(ctx, &how, argv[1])) return JS_EXCEPTION;
  if (shutdown(fd, how) < 0 && errno != ENOTCONN) return ug_throw_errno(ctx, "shutdown", errno);
  return JS_UNDEFINED;
}

// close(fd) and reset(fd): `rst` is the magic, true to send an RST (SO_LINGER 0).
static JSValue js_close(UG_JS_PARAMS, int rst) {
  int fd;
  if (arg_fd(ctx, argv[0], &fd)) return JS_EXCEPTION;
  ug_loop_forget_fd(ctx, fd);
  if (rst) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  // Linux closes the fd even when close() reports an error; only EBADF is a bug.
  if (close(fd) < 0 && errno == EBADF) return ug_throw_errno(ctx, "close", errno);
  return JS_UNDEFINED;
}

// localAddress(fd) and peerAddress(fd): `peer` is the magic.
static JSValue js_address(UG_JS_PARAMS, int peer) {
  int fd;
  if (arg_fd(ctx, argv[0], &fd)) return JS_EXCEPTION;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
               : getsockname(fd, (struct sockaddr *)&ss, &sl);
  if (r < 0) return ug_throw_errno(ctx, peer ? "getpeername" : "getsockname", errno);
  return addr_to_js(ctx, &ss);
}

// The destination a REDIRECT rule rewrote, from conntrack (needs nf_conntrack).
static JSValue js_original_dst(UG_JS_PARAMS) {
  int fd;
  if (arg_fd(ctx, argv[0], &fd)) return JS_EXCEPTION;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
    return ug_throw_errno(ctx, "getsockname", errno);
  bool v6 = ss.ss_family == AF_INET6;
  memset(&ss, 0, sizeof ss);
  sl = sizeof ss;
  int r = v6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &sl)
             : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &sl);
  if (r < 0 && v6) {
    // An IPv6 socket may carry a v4-mapped connection: try the IPv4 option too.
    sl = sizeof ss;
    r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &sl);
  }
  if (r < 0)
    return (errno == ENOENT || errno == ENOPROTOOPT)
               ? JS_NULL
               : ug_throw_errno(ctx, "getsockopt(SO_ORIGINAL_DST)", errno);
  return addr_to_js(ctx, &ss);
}

// ---- UDP sockets for services JS answers itself (the DNS listener) ----------------------
// Not the transparent UDP path: relayed datagrams never come through here.
// Each datagram's destination address is received (IP_PKTINFO /
// IPV6_RECVPKTINFO) so a reply can leave from the address the asker sent
// to, whatever else a wildcard socket is bound to.

static JSValue js_udp_bind(UG_JS_PARAMS) {
  int port, mark = 0;
  if (JS_ToInt32(ctx, &port, argv[1])) return JS_EXCEPTION;
  if (argc > 2 && JS_IsObject(argv[2]) && ug_opt_int(ctx, argv[2], "mark", &mark) < 0)
    return JS_EXCEPTION;
  struct sockaddr_storage ss;
  socklen_t sl = arg_ip(ctx, argv[0], port, 0, &ss, "udpBind");
  if (!sl) return JS_EXCEPTION;
  int fd = bind_socket(ctx, &ss, SOCK_DGRAM);
  if (fd < 0) return JS_EXCEPTION;
  int one = 1;
  const char *step = NULL;
  if (ss.ss_family == AF_INET6) {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) < 0)
      step = "setsockopt(IPV6_RECVPKTINFO)";
  } else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) {
    step = "setsockopt(IP_PKTINFO)";
  }
  if (!step && mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
    step = "setsockopt(SO_MARK)";
  if (!step && bind(fd, (struct sockaddr *)&ss, sl) < 0) step = "bind";
  if (step) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, step, e);
  }
  return JS_NewInt32(ctx, fd);
}

// The local address a datagram was sent to, from its IP_PKTINFO/IPV6_PKTINFO.
static void pktinfo_text(struct msghdr *mh, char *out, size_t size) {
  out[0] = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = ug_cmsg_next(mh, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      inet_ntop(AF_INET, &pi.ipi_addr, out, size);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr))
        inet_ntop(AF_INET, &pi.ipi6_addr.s6_addr[12], out, size);
      else
        inet_ntop(AF_INET6, &pi.ipi6_addr, out, size);
    }
  }
}

// recvFrom(fd, max): one datagram, or null when none is waiting.
static JSValue js_recv_from(UG_JS_PARAMS) {
  int fd, max;
  if (arg_fd(ctx, argv[0], &fd) || JS_ToInt32(ctx, &max, argv[1])) return JS_EXCEPTION;
  if (max <= 0 || max > 65535) return JS_ThrowRangeError(ctx, "recvFrom: max must be 1..65535");
  uint8_t buf[65535];
  struct sockaddr_storage ss;
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)max};
  struct msghdr mh = {.msg_name = &ss,
                      .msg_namelen = sizeof ss,
                      .msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cbuf.buf,
                      .msg_controllen = sizeof cbuf.buf};
  ssize_t n;
  do n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? JS_NULL : ug_throw_errno(ctx, "recvmsg", errno);
  JSValue o = addr_to_js(ctx, &ss);
  if (JS_IsNull(o)) o = JS_NewObject(ctx);
  size_t kept = (size_t)n < (size_t)max ? (size_t)n : (size_t)max;
  char local[INET6_ADDRSTRLEN];
  pktinfo_text(&mh, local, sizeof local);
  JS_SetPropertyStr(ctx, o, "data", JS_NewArrayBufferCopy(ctx, buf, kept));
  JS_SetPropertyStr(ctx, o, "size", JS_NewInt64(ctx, n));  // the datagram's real size (MSG_TRUNC)
  JS_SetPropertyStr(ctx, o, "local", local[0] ? JS_NewString(ctx, local) : JS_NULL);
  return o;
}

// sendTo(fd, data, addr, port, from?): bytes sent, or 0 when the socket is full.
static JSValue js_send_to(UG_JS_PARAMS) {
  int fd, port;
  const uint8_t *p;
  size_t len;
  if (arg_fd(ctx, argv[0], &fd) || ug_get_bytes(ctx, argv[1], &p, &len) ||
      JS_ToInt32(ctx, &port, argv[3]))
    return JS_EXCEPTION;
  struct sockaddr_storage own;
  socklen_t ol = sizeof own;
  if (getsockname(fd, (struct sockaddr *)&own, &ol) < 0)
    return ug_throw_errno(ctx, "getsockname", errno);
  struct sockaddr_storage ss;
  socklen_t sl = arg_ip(ctx, argv[2], port, 1, &ss, "sendTo");
  if (!sl) return JS_EXCEPTION;
  struct sockaddr_storage src;
  socklen_t srcl = 0;
  if (argc > 4 && JS_IsString(argv[4])) {
    const char *from = JS_ToCString(ctx, argv[4]);
    if (!from) return JS_EXCEPTION;
    srcl = parse_ip(from, 0, &src);
    JS_FreeCString(ctx, from);
    if (!srcl || src.ss_family != ss.ss_family)
      return JS_ThrowRangeError(ctx, "sendTo: from is not a numeric IP of the target's family");
  }
  if (own.ss_family == AF_INET6 && ss.ss_family == AF_INET) {
    // A dual-stack socket reaches IPv4 through a v4-mapped address.
    struct sockaddr_in a4;
    memcpy(&a4, &ss, sizeof a4);
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = a4.sin_port;
    a6->sin6_addr.s6_addr[10] = a6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&a6->sin6_addr.s6_addr[12], &a4.sin_addr, 4);
    sl = sizeof *a6;
  }
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } cbuf;
  memset(&cbuf, 0, sizeof cbuf);
  struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
  struct msghdr mh = {.msg_name = &ss, .msg_namelen = sl, .msg_iov = &iov, .msg_iovlen = 1};
  if (srcl) {
    // The source address (v4 also on a dual-stack socket: the kernel's IPv4
    // path reads SOL_IP options for a v4-mapped destination).
    mh.msg_control = cbuf.buf;
    struct cmsghdr *c = (struct cmsghdr *)cbuf.buf;
    if (src.ss_family == AF_INET) {
      struct in_pktinfo pi = {.ipi_spec_dst = ((struct sockaddr_in *)&src)->sin_addr};
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      mh.msg_controllen = CMSG_SPACE(sizeof pi);
    } else {
      struct in6_pktinfo pi = {.ipi6_addr = ((struct sockaddr_in6 *)&src)->sin6_addr};
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      mh.msg_controllen = CMSG_SPACE(sizeof pi);
    }
  }
  ssize_t n;
  do n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? JS_NewInt32(ctx, 0) : ug_throw_errno(ctx, "sendmsg", errno);
  return JS_NewInt64(ctx, n);
}

// ---- unix sockets (the admin socket) -------------------------------------------------
static int unix_addr(JSContext *ctx, JSValueConst v, struct sockaddr_un *sa) {
  size_t len;
  const char *path = JS_ToCStringLen(ctx, &len, v);
  if (!path) return -1;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  int ok = len > 0 && len < sizeof sa->sun_path && strlen(path) == len;
  if (ok) memcpy(sa->sun_path, path, len);
  JS_FreeCString(ctx, path);
  if (!ok)
    JS_ThrowRangeError(ctx, "unix socket path must be 1..%zu bytes", sizeof sa->sun_path - 1);
  return ok ? 0 : -1;
}

static JSValue js_listen_unix(UG_JS_PARAMS) {
  struct sockaddr_un sa;
  int backlog;
  if (unix_addr(ctx, argv[0], &sa) || JS_ToInt32(ctx, &backlog, argv[1])) return JS_EXCEPTION;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ug_throw_errno(ctx, "socket", errno);
  // A socket file left by a crash blocks bind: remove it, but only when
  // nobody answers on it (never a live instance's socket, never a regular file).
  struct stat st;
  if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int alive = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (probe >= 0) close(probe);
    if (alive) {
      close(fd);
      return ug_throw_errno(ctx, "listen", EADDRINUSE);
    }
    unlink(sa.sun_path);
  }
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, "listen", e);
  }
  chmod(sa.sun_path, 0600);  // status and connections are root's business
  return JS_NewInt32(ctx, fd);
}

// connectUnix (stream: admin socket, ubusd) or connectUnixDgram (/dev/log).
// A connected datagram socket lets send() report a reader that went away
// (ECONNREFUSED), so the caller can reconnect after logd restarts.
static JSValue js_connect_unix(UG_JS_PARAMS, int type) {
  struct sockaddr_un sa;
  if (unix_addr(ctx, argv[0], &sa)) return JS_EXCEPTION;
  int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ug_throw_errno(ctx, "socket", errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS &&
      errno != EAGAIN) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, "connect", e);
  }
  return JS_NewInt32(ctx, fd);
}

static JSValue js_unlink(UG_JS_PARAMS) {
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  int r = unlink(path);
  int e = errno;
  JS_FreeCString(ctx, path);
  if (r < 0 && e != ENOENT) return ug_throw_errno(ctx, "unlink", e);
  return JS_UNDEFINED;
}

static const JSCFunctionListEntry net_funcs[] = {
    JS_CFUNC_DEF("listenUnix", 2, js_listen_unix),
    JS_CFUNC_MAGIC_DEF("connectUnix", 1, js_connect_unix, SOCK_STREAM),
    JS_CFUNC_MAGIC_DEF("connectUnixDgram", 1, js_connect_unix, SOCK_DGRAM),
    JS_CFUNC_DEF("unlink", 1, js_unlink),
    JS_CFUNC_DEF("listen", 4, js_listen),
    JS_CFUNC_DEF("accept", 1, js_accept),
    JS_CFUNC_DEF("acceptBatch", 2, js_accept_batch),
    JS_CFUNC_DEF("connect", 3, js_connect),
    JS_CFUNC_DEF("socketError", 1, js_socket_error),
    JS_CFUNC_DEF("keepalive", 2, js_keepalive),
    JS_CFUNC_MAGIC_DEF("read", 2, js_recv, 0),
    JS_CFUNC_MAGIC_DEF("peek", 2, js_recv, MSG_PEEK),
    JS_CFUNC_DEF("write", 2, js_write),
    JS_CFUNC_DEF("shutdown", 2, js_shutdown),
    JS_CFUNC_MAGIC_DEF("close", 1, js_close, false),
    JS_CFUNC_MAGIC_DEF("reset", 1, js_close, true),
    JS_CFUNC_MAGIC_DEF("localAddress", 1, js_address, false),
    JS_CFUNC_MAGIC_DEF("peerAddress", 1, js_address, true),
    JS_CFUNC_DEF("originalDst", 1, js_original_dst),
    JS_CFUNC_DEF("udpBind", 3, js_udp_bind),
    JS_CFUNC_DEF("recvFrom", 2, js_recv_from),
    JS_CFUNC_DEF("sendTo", 5, js_send_to),
    JS_PROP_INT32_DEF("SHUT_RD", SHUT_RD, 0),
    JS_PROP_INT32_DEF("SHUT_WR", SHUT_WR, 0),
    JS_PROP_INT32_DEF("SHUT_RDWR", SHUT_RDWR, 0),
};

ug_exports ug_net_exports(void) {
  return (ug_exports){net_funcs, sizeof net_funcs / sizeof net_funcs[0]};
}
