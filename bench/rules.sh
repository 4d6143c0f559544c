#!/usr/bin/env bash
# bench/rules.sh — routing engine benchmark (not a test): compiles 10 000
# generated rules and prints µs per route() for early hits, late hits and
# misses, plus the compile time. See bench/rules.ts.
#
# Usage:  bench/rules.sh          on Node (esbuild bundles bench/rules.ts)
#         bench/rules.sh --qjs    on Node, then on QuickJS-ng, ugate's real engine:
#                                 a minimal runner is built from build/qjs-src
#                                 (run ./build.sh once to fetch it) into build/bench/
# Environment:
#   BENCH_RULES=10000   number of rules
#   BENCH_QJS_SCALE=0.05  fraction of the Node iteration count used on QuickJS
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/bench
BENCH_RULES=${BENCH_RULES:-10000}
BENCH_QJS_SCALE=${BENCH_QJS_SCALE:-0.05}
QJS_MODE=0
case "${1:-}" in
  "") ;;
  --qjs) QJS_MODE=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "rules.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
die() { echo "rules.sh: error: $*" >&2; exit 1; }

cd "$ROOT"
[ -x node_modules/.bin/esbuild ] || die "node_modules missing: run 'npm ci' (or ./build.sh deps)"
mkdir -p "$OUT"

# Node: an ES module bundle.
node_modules/.bin/esbuild bench/rules.ts --bundle --format=esm --platform=neutral \
  --banner:js="globalThis.BENCH_RULES=$BENCH_RULES;" --outfile="$OUT/rules-node.mjs" --log-level=warning
node --expose-gc "$OUT/rules-node.mjs"

[ "$QJS_MODE" = 1 ] || exit 0

# QuickJS-ng: a global script (IIFE) run by a 40-line runner that adds print()
# and memoryUsed() (bytes malloc'ed by the runtime after a GC).
QJS=$ROOT/build/qjs-src
[ -f "$QJS/quickjs.c" ] || die "no QuickJS-ng sources in build/qjs-src: run ./build.sh first"
RUNNER=$OUT/qjs-run
if [ ! -x "$RUNNER" ] || [ "$QJS/quickjs.c" -nt "$RUNNER" ]; then
  echo "building $RUNNER (QuickJS-ng, -O2; takes a minute)" >&2
  cat >"$OUT/qjs-run.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include "quickjs.h"

static JSValue js_print(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  for (int i = 0; i < argc; i++) {
    const char *s = JS_ToCString(ctx, argv[i]);
    if (s) { fputs(s, stdout); JS_FreeCString(ctx, s); }
    if (i + 1 < argc) putchar(' ');
  }
  putchar('\n');
  return JS_UNDEFINED;
}

static JSValue js_memory_used(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  JSRuntime *rt = JS_GetRuntime(ctx);
  JSMemoryUsage m;
  JS_RunGC(rt);
  JS_ComputeMemoryUsage(rt, &m);
  return JS_NewFloat64(ctx, (double)m.malloc_size);
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: qjs-run SCRIPT\n"); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 1; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc(len + 1);
  if (!buf || fread(buf, 1, len, f) != (size_t)len) { fprintf(stderr, "read failed\n"); return 1; }
  buf[len] = 0;
  fclose(f);
  JSRuntime *rt = JS_NewRuntime();
  JSContext *ctx = JS_NewContext(rt);
  JSValue global = JS_GetGlobalObject(ctx);
  JS_SetPropertyStr(ctx, global, "print", JS_NewCFunction(ctx, js_print, "print", 1));
  JS_SetPropertyStr(ctx, global, "memoryUsed", JS_NewCFunction(ctx, js_memory_used, "memoryUsed", 0));
  JS_FreeValue(ctx, global);
  JSValue r = JS_Eval(ctx, buf, len, argv[1], JS_EVAL_TYPE_GLOBAL);
  if (JS_IsException(r)) {
    JSValue e = JS_GetException(ctx);
    const char *s = JS_ToCString(ctx, e);
    JSValue stack = JS_GetPropertyStr(ctx, e, "stack");
    const char *st = JS_ToCString(ctx, stack);
    fprintf(stderr, "%s\n%s\n", s ? s : "exception", st ? st : "");
    return 1;
  }
  JS_FreeValue(ctx, r);
  JSContext *c;
  while (JS_ExecutePendingJob(rt, &c) > 0) {}
  return 0;
}
EOF
  gcc -O2 -w -I"$QJS" -o "$RUNNER" "$OUT/qjs-run.c" \
    "$QJS/quickjs.c" "$QJS/libregexp.c" "$QJS/libunicode.c" "$QJS/dtoa.c" -lm -lpthread
fi
node_modules/.bin/esbuild bench/rules.ts --bundle --format=iife --platform=neutral --target=es2022 \
  --banner:js="globalThis.BENCH_RULES=$BENCH_RULES;globalThis.BENCH_SCALE=$BENCH_QJS_SCALE;" \
  --outfile="$OUT/rules-qjs.js" --log-level=warning
echo
"$RUNNER" "$OUT/rules-qjs.js"
