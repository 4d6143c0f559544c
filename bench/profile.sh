#!/usr/bin/env bash
# bench/profile.sh — where a short connection's time goes in ugate (not a test).
#
# Builds a copy of today's build/ugate with symbols (glibc, -O2 -g, frame
# pointers; native/build.mk, the same sources as build/ugate) into a
# temp dir, puts a `forward` in front of an nginx on loopback and loads it with
# wrk -H "Connection: close" (one 6-byte response per connection). Prints:
#   1. CPU per connection of each ugate thread (main = QuickJS + event loop,
#      relay), for variants that switch one cost off: the access log
#      (--log-level warn), splice (--no-splice), the log's destination;
#   2. syscalls per connection by name (strace -c -f, all threads);
#   3. calls per connection, counted exactly with uprobes (perf probe): every
#      native binding JS calls (js_* in native/), JS function calls
#      (JS_CallInternal), C functions called from JS, QuickJS allocations;
#   4. perf record -g (cpu-clock): the share of each thread, of the kernel,
#      QuickJS, native/ and libc, and the top symbols with call chains.
# Needs make (build/ugate, build/gen/bundle.c), wrk, nginx, strace, perf
# (linux-perf). Environment: PROFILE_SECONDS=5 (each load run), PROFILE_CONNS=50
# (wrk -c), PROFILE_COUNT=300 (connections counted with uprobes),
# PROFILE_VIA=forward|mixed (mixed: a `mixed` listener, one SOCKS5 CONNECT to
# the origin's IP per request: bench/connload.c for the load, curl --socks5
# for the counted connections and section 4's load), PROFILE_SOCKS_NAME
# (mixed: the counted connections CONNECT to this host name instead, say
# localhost: curl --socks5-hostname; ugate resolves it).
# PROFILE_BASE_BIN=PATH adds section 5: that binary against build/ugate
# (both as shipped, no symbols), alternating, PROFILE_ROUNDS=3 rounds of
# PROFILE_SECONDS: conn/s, CPU (and user) per connection, and per connection the
# syscalls, epoll_ctl, recvfrom, batches to JS (writes to stderr: one per batch of
# access lines) and context switches, counted by perf's tracepoints (which,
# unlike strace, leave the load as it is). PROFILE_AB_ONLY=1: section 5 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $# -eq 0 ]] || bad_arg "$1"
SECS=${PROFILE_SECONDS:-5}
CONNS=${PROFILE_CONNS:-50}
COUNT=${PROFILE_COUNT:-300}
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "PROFILE_COUNT: '$COUNT' is not a positive integer"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "PROFILE_SECONDS: '$SECS' is not a positive integer"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "PROFILE_CONNS: '$CONNS' is not a positive integer"
VIA=${PROFILE_VIA:-forward}
SOCKS_NAME=${PROFILE_SOCKS_NAME:-}
[[ $VIA == forward || $VIA == mixed ]] || die "PROFILE_VIA: '$VIA' is not forward or mixed"
BASE_BIN=${PROFILE_BASE_BIN:-}
AB_ONLY=${PROFILE_AB_ONLY:-}
AB_ROUNDS=${PROFILE_ROUNDS:-3}
[[ $AB_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "PROFILE_ROUNDS: '$AB_ROUNDS' is not a positive integer"
[[ -z $BASE_BIN || -x $BASE_BIN ]] || die "PROFILE_BASE_BIN: '$BASE_BIN' is not an executable"
[[ -z $AB_ONLY || -n $BASE_BIN ]] || die "PROFILE_AB_ONLY needs PROFILE_BASE_BIN"
[[ -x $ROOT/build/ugate ]] || die "build/ugate missing: run make first"
[[ -f $ROOT/build/gen/bundle.c && -d $ROOT/build/qjs-src && -d $MBEDTLS ]] || die "build/gen/bundle.c missing: run make first"
apt_install wrk nginx-light libnginx-mod-stream strace linux-perf gcc curl
for c in wrk nginx strace perf gcc; do need "$c" "$c"; done

# ---------------------------------------------------------------- the build with symbols
BIN=$TMP/ugate-sym
if [[ -z $AB_ONLY ]]; then
log "building $BIN (glibc, -O2 -g -fno-omit-frame-pointer)"
# native/build.mk as for every build, with the tool profile (-O2) and symbols.
native_make O="$TMP/obj" CC=gcc PROFILE=tool CFLAGS="-g -fno-omit-frame-pointer -DNDEBUG" \
  QJS="$ROOT/build/qjs-src" MBEDTLS="$MBEDTLS" BIN="$BIN" BUNDLE="$ROOT/build/gen/bundle.c" "$BIN" \
  || die "cannot build $BIN"
NATIVE_OBJS=("$TMP"/obj/native/*.o)
# native/'s function names, to tell them from QuickJS's in the profile
nm --defined-only "${NATIVE_OBJS[@]}" | awk '$2 ~ /^[tT]$/ {print $3}' | sort -u >"$TMP/native.syms"
fi

start_origin 1
CONNLOAD=$TMP/connload
gcc -O2 -Wall -Wextra -pthread -o "$CONNLOAD" "$ROOT/bench/connload.c" || die "cannot compile bench/connload.c"

# ---------------------------------------------------------------- helpers
thread_ticks() {  # PID: "main relay" utime+stime ticks (the relay thread: every thread but the main one)
  local t m=0 r=0 v
  for t in /proc/"$1"/task/*; do
    v=$(sed 's/^.*) //' "$t/stat" | awk '{print $12 + $13}')
    if [[ ${t##*/} == "$1" ]]; then m=$((m + v)); else r=$((r + v)); fi
  done
  echo "$m $r"
}
# start_ugate NAME LOG ARGS... : a forward on a free port to the origin, its log to LOG
# ("" = $TMP/NAME.log); sets UG_PID, UG_PORT
start_ugate() {
  local name=$1 logf=${2:-$TMP/$1.log}; shift 2
  free_port UG_PORT
  if [[ $VIA == mixed ]]; then
    ugate_conf "$TMP/$name.json" "{ \"name\": \"mx\", \"type\": \"mixed\", \"listen\": \"127.0.0.1:$UG_PORT\" }"
  else
    ugate_conf "$TMP/$name.json" "{ \"name\": \"fwd\", \"type\": \"forward\", \"listen\": \"127.0.0.1:$UG_PORT\", \"target\": \"127.0.0.1:$ORIGIN\" }"
  fi
  start_bg "$logf" "${UG_BIN:-$BIN}" run --config "$TMP/$name.json" "$@"
  UG_PID=$BG_PID
  wait_listen "$UG_PORT" "$UG_PID" "$logf"
}
load() {  # PORT: wrk (or connload through SOCKS5) for SECS seconds; prints the requests done
  if [[ $VIA == mixed ]]; then
    "$CONNLOAD" http "$1" "127.0.0.1:$ORIGIN" "$CONNS" 2 "$SECS" | sed -n 's/.*requests=\([0-9]*\).*/\1/p'
  else
    wrk -t2 -c"$CONNS" -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:$1/small" | awk '/requests in/ {print $1}'
  fi
}

# ---------------------------------------------------------------- 5. A/B (PROFILE_BASE_BIN)
utime_ticks() { sed 's/^[0-9]* (.*) //' "/proc/$1/stat" | awk '{ print $12 }'; }  # PID: its utime
ab_section() {
  local r name pid n c0 c1 u0 u1
  echo "## 5. Same run: $BASE_BIN (base) against build/ugate (new), alternating, ${SECS} s of load each"
  echo
  echo "| round | binary | conn/s | CPU µs/conn | user µs/conn | syscalls | epoll_ctl | recvfrom | batches to JS | context switches |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in $(seq "$AB_ROUNDS"); do
    for name in base new; do
      UG_BIN=$ROOT/build/ugate
      [[ $name == base ]] && UG_BIN=$BASE_BIN
      start_ugate ab-$name ""
      pid=$UG_PID
      c0=$(cpu_ticks "$pid")
      u0=$(utime_ticks "$pid")
      # the load as load() runs it, under perf stat's tracepoint counts
      perf stat -x, -o "$TMP/ab.csv" -e context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_epoll_ctl \
        -e syscalls:sys_enter_recvfrom -e syscalls:sys_enter_write --filter 'fd == 2' -p "$pid" -- \
        bash -c "$(declare -f load); $(declare -p VIA CONNLOAD ORIGIN CONNS SECS); load $UG_PORT" >"$TMP/ab-load.txt"
      c1=$(cpu_ticks "$pid")
      u1=$(utime_ticks "$pid")
      stop_bg "$pid"
      n=$(cat "$TMP/ab-load.txt")
      [[ $n =~ ^[1-9][0-9]*$ ]] || die "A/B: no requests completed through $name"
      awk -F, -v n="$n" -v r="$r" -v name="$name" -v secs="$SECS" -v cpu=$(((c1 - c0) * 1000000 / CLK_TCK)) \
        -v user=$(((u1 - u0) * 1000000 / CLK_TCK)) '
        /context-switches/ { cs = $1 } /raw_syscalls:sys_enter/ { sc = $1 }
        /sys_enter_epoll_ctl/ { ec = $1 } /sys_enter_recvfrom/ { rf = $1 } /sys_enter_write/ { w = $1 }
        END { printf "| %s | %s | %.0f | %.0f | %.1f | %.2f | %.2f | %.2f | %.3f | %.2f |\n", r, name, n / secs, cpu / n, user / n, sc / n, ec / n, rf / n, w / n, cs / n }' "$TMP/ab.csv"
    done
  done
  UG_BIN=
  echo
  echo "(CPU: utime+stime of the process from /proc over the load; the rest per connection, all threads)"
  echo
}
if [[ -n $BASE_BIN ]]; then
  ab_section
  [[ -z $AB_ONLY ]] || exit 0
fi

# ---------------------------------------------------------------- 1. CPU per connection
echo "## 1. CPU per connection (µs; utime+stime of each thread / connections; ${SECS} s of wrk -c$CONNS)"
echo
echo "| variant | connections | main thread | relay thread | total |"
echo "|---|---:|---:|---:|---:|"
variant() {  # NAME LOG ARGS...
  local name=$1 logf=$2 m0 r0 m1 r1 n; shift 2
  start_ugate variant "$logf" "$@"
  read -r m0 r0 <<<"$(thread_ticks "$UG_PID")"
  n=$(load "$UG_PORT")
  read -r m1 r1 <<<"$(thread_ticks "$UG_PID")"
  stop_bg "$UG_PID"
  awk -v v="$name" -v n="$n" -v m=$((m1 - m0)) -v r=$((r1 - r0)) -v t="$CLK_TCK" 'BEGIN {
    u = 1e6 / t / n; printf "| %s | %d | %.0f | %.0f | %.0f |\n", v, n, m * u, r * u, (m + r) * u }'
}
for round in 1 2; do
  variant "access log to a file (default)" ""
  variant "access log to /dev/null" /dev/null
  variant "--log-level warn (no access line)" "" --log-level warn
  variant "--no-splice" "" --no-splice
  [[ $round == 2 ]] || echo "| (round 2) | | | | |"
done
echo

# ---------------------------------------------------------------- 2. syscalls per connection
echo "## 2. Syscalls per connection (strace -c -f over ${SECS} s of load; strace slows ugate: counts, not times)"
echo
start_ugate strace ""
strace -c -f -qq -o "$TMP/strace.txt" -p "$UG_PID" 2>/dev/null & ST=$!
PIDS+=("$ST")
for _ in $(seq 100); do [[ $(status_kb "$UG_PID" TracerPid) == 0 ]] || break; sleep 0.05; done  # attached
n=$(load "$UG_PORT")
kill -INT "$ST" 2>/dev/null || true; wait "$ST" 2>/dev/null || true; forget_pid "$ST"
stop_bg "$UG_PID"
awk -v n="$n" '$1 ~ /^[0-9.]+$/ && $NF != "total" { c = ($4 ~ /^[0-9]+$/) ? $4 : $3; printf "%s %.2f\n", $NF, c / n; t += c }
  END { printf "TOTAL %.2f\n", t / n }' "$TMP/strace.txt" | sort -k2 -nr |
  awk -v n="$n" 'BEGIN { print "| syscall | per connection |"; print "|---|---:|" } { printf "| %s | %s |\n", $1, $2 }
  END { printf "\n(%d connections)\n", n }'
echo

# ---------------------------------------------------------------- 3. calls per connection
echo "## 3. Calls per connection (uprobes on the symbol build; exact counts)"
echo
GROUP=ubench$$
CLEANUP+=("perf probe -q -d '$GROUP:*' 2>/dev/null")
PROBES=(JS_CallInternal js_call_c_function js_arena_malloc ug_call)
mapfile -t -O ${#PROBES[@]} PROBES < <(grep -E '^js_' "$TMP/native.syms")
for f in "${PROBES[@]}"; do perf probe -q -x "$BIN" -a "$GROUP:$f=$f" >/dev/null 2>&1 || log "no probe on $f"; done
start_ugate probes ""
fetch_n() {  # N: one request at a time, through the forward or as a SOCKS5 CONNECT to the origin
  local i args=("http://127.0.0.1:$UG_PORT/small")
  [[ $VIA == mixed ]] && args=(--socks5 "127.0.0.1:$UG_PORT" "http://127.0.0.1:$ORIGIN/small")
  [[ $VIA == mixed && -n $SOCKS_NAME ]] && args=(--socks5-hostname "127.0.0.1:$UG_PORT" "http://$SOCKS_NAME:$ORIGIN/small")
  for ((i = 0; i < $1; i++)); do curl -sf "${args[@]}" >/dev/null || return 1; done
}
fetch_n 20 || die "curl through ugate failed"  # warm-up: first-time shapes, atoms and pools are not per connection
# perf counts on ugate while the command runs (it arms the counters before starting it); one
# connection at a time, so each is finished (access line written) before the next
export -f fetch_n; export UG_PORT VIA ORIGIN SOCKS_NAME
perf stat -x, -e "$GROUP:*" -p "$UG_PID" -o "$TMP/probes.csv" -- bash -c "fetch_n $COUNT" ||
  die "the counted connections failed"
stop_bg "$UG_PID"
awk -F, -v n="$COUNT" -v g="$GROUP:" '$3 ~ g && $1 + 0 > 0 { sub(g, "", $3); printf "%s %.2f\n", $3, $1 / n }' "$TMP/probes.csv" | sort -k2 -nr |
  awk -v n="$COUNT" 'BEGIN { print "| function | calls per connection |"; print "|---|---:|" } { printf "| %s | %s |\n", $1, $2 }
    END { printf "\n(%d connections one after the other, curl, after 20 for warm-up)\n", n }'
perf probe -q -d "$GROUP:*" 2>/dev/null || true
echo

# ---------------------------------------------------------------- 3. perf
echo "## 4. perf record -g (cpu-clock, ${SECS} s of load; through the $VIA listener)"
echo
start_ugate perf ""
perf record -q -F 999 -g -p "$UG_PID" -o "$TMP/perf.data" -- bash -c "$(declare -f load); $(declare -p VIA CONNLOAD ORIGIN CONNS SECS); load $UG_PORT" >"$TMP/perf-load.txt" 2>/dev/null
stop_bg "$UG_PID"
perf report -i "$TMP/perf.data" --no-children --sort pid,dso,sym --stdio -g none 2>/dev/null |
  awk -v pid="$UG_PID" -v syms="$TMP/native.syms" '
    BEGIN { while ((getline s < syms) > 0) NAT[s] = 1 }
    /^ *[0-9.]+%/ {
      p = $1; sub(/%/, "", p); split($2, a, ":")
      th = (a[1] == pid) ? "main" : "relay"; dso = $3; sym = $NF
      if (dso ~ /kernel/) k = "kernel"
      else if (dso ~ /libc/) k = (sym ~ /malloc|free|realloc|memcpy|memset|memmove/) ? "libc alloc/copy" : "libc"
      else if (sym in NAT) k = "native/"
      else if (sym ~ /^JS_CallInternal$/) k = "QuickJS interpreter"
      else if (sym ~ /malloc|free|gc_|mark_|arena|_rt\.part|js_realloc|JS_FreeValue/) k = "QuickJS alloc/free/GC"
      else if (sym ~ /propert|shape|JS_DefineProperty|JS_GetProperty|JS_SetProperty|find_own|js_create_from_ctor|JS_NewObject/) k = "QuickJS objects/properties"
      else if (sym ~ /promise|async|job/) k = "QuickJS promises/async"
      else if (sym ~ /string|String|atom|Atom|concat|dtoa|number/) k = "QuickJS strings/atoms"
      else k = "QuickJS other"
      T[th] += p; C[th, k] += p; K[k] = 1
      if (++rows <= 30) top = top sprintf("| %s | %s | %s | %.1f %% |\n", th, k, sym, p)
    }
    END {
      print "| part | main thread | relay thread |"; print "|---|---:|---:|"
      n = split("kernel|native/|QuickJS interpreter|QuickJS alloc/free/GC|QuickJS objects/properties|QuickJS promises/async|QuickJS strings/atoms|QuickJS other|libc alloc/copy|libc", o, "|")
      for (i = 1; i <= n; i++) if (o[i] in K) printf "| %s | %.1f %% | %.1f %% |\n", o[i], C["main", o[i]], C["relay", o[i]]
      printf "| **all** | %.1f %% | %.1f %% |\n", T["main"], T["relay"]
      print ""; print "Top symbols (self time):"; print ""
      print "| thread | part | symbol | share |"; print "|---|---|---|---:|"; printf "%s", top
    }'
echo
echo "Inclusive time (perf report --children) of ugate's native functions and QuickJS's entry points:"
echo
perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none 2>/dev/null |
  awk -v syms="$TMP/native.syms" 'BEGIN { while ((getline s < syms) > 0) NAT[s] = 1
      print "| function | inclusive | self |"; print "|---|---:|---:|" }
    /^ *[0-9.]+%/ && ($NF in NAT || $NF ~ /^(JS_Call|JS_ExecutePendingJob|js_async_function_resume|js_call_c_function|promise_reaction_job)$/) {
      if (++n <= 30) printf "| %s | %s | %s |\n", $NF, $1, $2 }'
echo
echo "($n connections during the profile)"
perf report -i "$TMP/perf.data" --no-children --stdio -G --percent-limit 3 2>/dev/null | grep -v '^#' | grep -v '^$' | head -150 >"$TMP/callgraph.txt" || true
echo
echo "Call chains of the biggest symbols (perf report -G, ≥ 3 %):"
echo
echo '```'
cat "$TMP/callgraph.txt"
echo '```'
