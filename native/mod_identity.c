// identityCreate / identityInspect: identity.c for `ugate identity`
// (src/io/identity.ts); randomBytes / identitySign / identityVerifySignature
// for the SNI relay's registration (src/io/sni-relay.ts); sha1 for the admin
// WebSocket's accept key (src/io/admin-http.ts). Decisions (names, dates,
// files, what is signed) are the caller's.
#include <stdlib.h>

#include "identity.h"
#include "mbedtls/sha1.h"
#include "ugate.h"

static JSValue throw_msg(JSContext *ctx, const char *msg) {
  return JS_ThrowPlainError(ctx, "%s", msg);
}

static JSValue js_identity_create(UG_JS_PARAMS) {
  static const char *const keys[] = {"caSubject",     "caNotBefore",  "caNotAfter", "nodeSubject",
                                     "nodeNotBefore", "nodeNotAfter", "uri"};
  enum { NKEYS = sizeof keys / sizeof keys[0] };
  const char *v[NKEYS] = {0};
  JSValue result = JS_EXCEPTION;
  int i = 0;
  for (; i < NKEYS; i++) {
    int r = ug_opt_string(ctx, argv[0], keys[i], &v[i]);
    if (r < 0) break;
    if (r == 0) {
      JS_ThrowTypeError(ctx, "identityCreate: %s is missing", keys[i]);
      break;
    }
  }
  if (i == NKEYS) {
    ug_id_params p = {v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
    ug_id_pems pems;
    char err[UG_ID_ERR_MAX];
    if (ug_id_create(&p, &pems, err)) {
      result = throw_msg(ctx, err);
    } else {
      result = JS_NewObject(ctx);
      JS_SetPropertyStr(ctx, result, "rootCert", JS_NewString(ctx, pems.root_cert));
      JS_SetPropertyStr(ctx, result, "caKey", JS_NewString(ctx, pems.ca_key));
      JS_SetPropertyStr(ctx, result, "certChain", JS_NewString(ctx, pems.cert_chain));
      JS_SetPropertyStr(ctx, result, "key", JS_NewString(ctx, pems.key));
      ug_id_pems_free(&pems);
    }
  }
  for (int j = 0; j < NKEYS; j++)
    if (v[j]) JS_FreeCString(ctx, v[j]);
  return result;
}

static JSValue cert_object(JSContext *ctx, const ug_id_cert *c) {
  JSValue o = JS_NewObject(ctx), uris = JS_NewArray(ctx);
  JS_SetPropertyStr(ctx, o, "subject", JS_NewString(ctx, c->subject));
  JS_SetPropertyStr(ctx, o, "issuer", JS_NewString(ctx, c->issuer));
  JS_SetPropertyStr(ctx, o, "notBefore", JS_NewString(ctx, c->not_before));
  JS_SetPropertyStr(ctx, o, "notAfter", JS_NewString(ctx, c->not_after));
  for (int i = 0; i < c->uri_count; i++)
    JS_SetPropertyUint32(ctx, uris, (uint32_t)i, JS_NewString(ctx, c->uris[i]));
  JS_SetPropertyStr(ctx, o, "uris", uris);
  JS_SetPropertyStr(
      ctx, o, "publicKey",
      c->public_key_len ? JS_NewUint8ArrayCopy(ctx, c->public_key, c->public_key_len) : JS_NULL);
  char node_id[UG_ID_NODE_ID_LEN + 1];
  JS_SetPropertyStr(ctx, o, "nodeId",
                    ug_id_node_id(c->public_key, c->public_key_len, node_id)
                        ? JS_NULL
                        : JS_NewString(ctx, node_id));
  return o;
}

static JSValue js_identity_inspect(UG_JS_PARAMS) {
  const char *chain = JS_ToCString(ctx, argv[0]);
  const char *roots = chain ? JS_ToCString(ctx, argv[1]) : NULL;
  const char *key = roots && !JS_IsUndefined(argv[2]) ? JS_ToCString(ctx, argv[2]) : NULL;
  JSValue result = JS_EXCEPTION;
  if (roots && (key || JS_IsUndefined(argv[2]))) {
    ug_id_report rep;
    char err[UG_ID_ERR_MAX];
    ug_id_status st = ug_id_inspect(chain, roots, key, &rep, err);
    result = JS_NewObject(ctx);
    if (st != UG_ID_OK) {
      static const char *const which[] = {"", "chain", "root", "key"};
      JS_SetPropertyStr(ctx, result, "error", JS_NewString(ctx, which[st]));
      JS_SetPropertyStr(ctx, result, "message", JS_NewString(ctx, err));
    } else {
      JSValue certs = JS_NewArray(ctx);
      for (int i = 0; i < rep.count; i++)
        JS_SetPropertyUint32(ctx, certs, (uint32_t)i, cert_object(ctx, &rep.certs[i]));
      JS_SetPropertyStr(ctx, result, "certs", certs);
      JS_SetPropertyStr(ctx, result, "verify", JS_NewString(ctx, rep.verify));
      if (key) JS_SetPropertyStr(ctx, result, "keyMatches", JS_NewBool(ctx, rep.key_matches));
      ug_id_report_free(&rep);
    }
  }
  if (key) JS_FreeCString(ctx, key);
  if (roots) JS_FreeCString(ctx, roots);
  if (chain) JS_FreeCString(ctx, chain);
  return result;
}

static JSValue js_random_bytes(UG_JS_PARAMS) {
  uint32_t n;
  if (JS_ToUint32(ctx, &n, argv[0])) return JS_EXCEPTION;
  if (n == 0 || n > 256) return JS_ThrowRangeError(ctx, "randomBytes: %u is not 1-256", n);
  uint8_t buf[256];
  char err[UG_ID_ERR_MAX];
  if (ug_id_random(buf, n, err)) return throw_msg(ctx, err);
  return JS_NewUint8ArrayCopy(ctx, buf, n);
}

// RFC 6455 asks SHA-1 of the handshake; mbedTLS has it anyway (a CA bundle's roots).
static JSValue js_sha1(UG_JS_PARAMS) {
  const uint8_t *data;
  size_t len;
  if (ug_get_bytes(ctx, argv[0], &data, &len)) return JS_EXCEPTION;
  uint8_t out[20];
  if (mbedtls_sha1(data, len, out)) return throw_msg(ctx, "sha1 failed");
  return JS_NewUint8ArrayCopy(ctx, out, sizeof out);
}

static JSValue js_identity_sign(UG_JS_PARAMS) {
  const uint8_t *data;
  size_t len;
  if (ug_get_bytes(ctx, argv[1], &data, &len)) return JS_EXCEPTION;
  const char *key = JS_ToCString(ctx, argv[0]);
  if (!key) return JS_EXCEPTION;
  uint8_t sig[UG_ID_SIG_MAX];
  size_t sig_len = 0;
  char err[UG_ID_ERR_MAX];
  int r = ug_id_sign(key, data, len, sig, &sig_len, err);
  JS_FreeCString(ctx, key);
  return r ? throw_msg(ctx, err) : JS_NewUint8ArrayCopy(ctx, sig, sig_len);
}

static JSValue js_identity_verify_signature(UG_JS_PARAMS) {
  const uint8_t *data, *sig;
  size_t len, sig_len;
  if (ug_get_bytes(ctx, argv[1], &data, &len) || ug_get_bytes(ctx, argv[2], &sig, &sig_len))
    return JS_EXCEPTION;
  const char *chain = JS_ToCString(ctx, argv[0]);
  if (!chain) return JS_EXCEPTION;
  char err[UG_ID_ERR_MAX];
  int r = ug_id_verify_sig(chain, data, len, sig, sig_len, err);
  JS_FreeCString(ctx, chain);
  return r < 0 ? throw_msg(ctx, err) : JS_NewBool(ctx, r);
}

static const JSCFunctionListEntry identity_funcs[] = {
    JS_CFUNC_DEF("identityCreate", 1, js_identity_create),
    JS_CFUNC_DEF("identityInspect", 3, js_identity_inspect),
    JS_CFUNC_DEF("randomBytes", 1, js_random_bytes),
    JS_CFUNC_DEF("sha1", 1, js_sha1),
    JS_CFUNC_DEF("identitySign", 2, js_identity_sign),
    JS_CFUNC_DEF("identityVerifySignature", 3, js_identity_verify_signature),
};

ug_exports ug_identity_exports(void) {
  return (ug_exports){identity_funcs, sizeof identity_funcs / sizeof identity_funcs[0]};
}
