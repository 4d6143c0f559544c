// A netlink socket subscribed to nftables change notifications
// (NFNLGRP_NFTABLES): readable whenever any table, chain or rule changes,
// e.g. when fw4 flushes the ruleset. JS only drains it and re-checks its
// own table; the messages themselves are not parsed.
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ugate.h"

// Kernel ABI values (linux/netlink.h, linux/netfilter/nfnetlink.h): musl's
// toolchain ships no kernel headers.
#ifndef AF_NETLINK
#define AF_NETLINK 16
#endif
#define NETLINK_NETFILTER 12
#define NFNLGRP_NFTABLES 7
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#define NETLINK_ADD_MEMBERSHIP 1
struct sockaddr_nl {
  unsigned short nl_family;
  unsigned short nl_pad;
  uint32_t nl_pid;
  uint32_t nl_groups;
};

static JSValue js_nft_monitor(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  (void)argv;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return ug_throw_errno(ctx, "socket", errno);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  int group = NFNLGRP_NFTABLES;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
    int e = errno;
    close(fd);
    return ug_throw_errno(ctx, "netlink", e);
  }
  return JS_NewInt32(ctx, fd);
}

static const JSCFunctionListEntry nlmon_funcs[] = {
    JS_CFUNC_DEF("nftMonitor", 0, js_nft_monitor),
};

ug_exports ug_nlmon_exports(void) {
  return (ug_exports){nlmon_funcs, sizeof nlmon_funcs / sizeof nlmon_funcs[0]};
}
