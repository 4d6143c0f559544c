// quicOpenInitials(datagram): the client Initial packets of one UDP datagram,
// opened (quic.c), for the QUIC sniffer (src/core/sniff/quic.ts). Coalesced
// packets (RFC 9000 12.2) are walked in order: 0-RTT and Handshake packets
// are stepped over, a short header packet or padding ends the walk.
#include <stdlib.h>

#include "quic.h"
#include "ugate.h"

static const char *err_kind(ug_quic_err err) {
  switch (err) {
    case UG_QUIC_NOT_QUIC:
      return "not-quic";
    case UG_QUIC_NOT_INITIAL:
      return "not-initial";
    case UG_QUIC_VERSION:
      return "version";
    case UG_QUIC_MALFORMED:
      return "malformed";
    case UG_QUIC_TRUNCATED:
      return "truncated";
    default:
      return "bad-tag";
  }
}

static JSValue error_result(JSContext *ctx, ug_quic_err err, const ug_quic_initial *info,
                            size_t at) {
  char msg[128];
  if (err == UG_QUIC_VERSION)
    snprintf(msg, sizeof msg, "quic: version 0x%08x is not v1 or v2 (packet at offset %zu)",
             (unsigned)info->version, at);
  else
    snprintf(msg, sizeof msg, "quic: %s (packet at offset %zu)", ug_quic_strerror(err), at);
  JSValue r = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, r, "error", JS_NewString(ctx, err_kind(err)));
  JS_SetPropertyStr(ctx, r, "message", JS_NewString(ctx, msg));
  return r;
}

static JSValue js_quic_open_initials(UG_JS_PARAMS) {
  const uint8_t *dgram;
  size_t len;
  if (ug_get_bytes(ctx, argv[0], &dgram, &len)) return JS_EXCEPTION;
  uint8_t *out = malloc(len ? len : 1);
  if (!out) return JS_ThrowOutOfMemory(ctx);
  JSValue packets = JS_NewArray(ctx), result = JS_UNDEFINED;
  uint32_t count = 0;
  size_t pos = 0;
  do {  // an empty datagram is "not QUIC" too
    ug_quic_initial info;
    ug_quic_err err = ug_quic_open_initial(dgram + pos, len - pos, out, &info);
    if (err == UG_QUIC_NOT_INITIAL && count > 0) {
      pos += info.packet_len;  // coalesced 0-RTT or Handshake
      continue;
    }
    if (err == UG_QUIC_NOT_QUIC && count > 0) break;  // a short header packet, or padding
    if (err) {
      result = error_result(ctx, err, &info, pos);
      break;
    }
    JSValue p = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, p, "version", JS_NewUint32(ctx, info.version));
    JS_SetPropertyStr(ctx, p, "dcid", JS_NewUint8ArrayCopy(ctx, info.dcid, info.dcid_len));
    JS_SetPropertyStr(ctx, p, "pn", JS_NewFloat64(ctx, (double)info.pn));
    JS_SetPropertyStr(ctx, p, "frames", JS_NewUint8ArrayCopy(ctx, out, info.frames_len));
    JS_SetPropertyUint32(ctx, packets, count++, p);
    pos += info.packet_len;
  } while (pos < len);
  free(out);
  if (!JS_IsUndefined(result)) {
    JS_FreeValue(ctx, packets);
    return result;
  }
  result = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, result, "packets", packets);
  return result;
}

static const JSCFunctionListEntry quic_funcs[] = {
    JS_CFUNC_DEF("quicOpenInitials", 1, js_quic_open_initials),
};

ug_exports ug_quic_exports(void) {
  return (ug_exports){quic_funcs, sizeof quic_funcs / sizeof quic_funcs[0]};
}
