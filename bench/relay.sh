#!/usr/bin/env bash
# bench/relay.sh — relay throughput benchmark for ugate (not a test).
#
# Measures iperf3 throughput on 127.0.0.1 through several TCP relays ("peers"),
# all in the same run, in rotation, and prints a table + ratio lines + targets.
# It then rewrites the marked section of docs/performance.md.
#
# Usage:  bench/relay.sh              full benchmark (default settings)
#         bench/relay.sh --strace     short strace -c run per splicing peer: shows
#                                     which syscalls really move the bytes
# Environment:
#   BENCH_SECONDS=10    iperf3 duration per run
#   BENCH_ROUNDS=2      rounds; every peer runs once per round and stream count
#   BENCH_STREAMS="1 4" iperf3 parallel streams (-P) to measure
#   BENCH_PEERS="direct ugate-splice ugate-copy haproxy-splice haproxy-nosplice socat limit_relay"
#                       peers to run (leave the ugate-* ones out to bench without build/ugate)
#   BENCH_DOC=docs/performance.md   file whose marked section is rewritten; "-" = don't write
#   UGATE_BIN=build/ugate           ugate executable
#   LIMIT_RELAY_SRC=../shared/bench/limit_relay.c   yardstick relay source (compiled to a temp dir)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_STREAMS=${BENCH_STREAMS:-"1 4"}
ALL_PEERS="direct ugate-splice ugate-copy haproxy-splice haproxy-nosplice socat limit_relay"
BENCH_PEERS=${BENCH_PEERS:-$ALL_PEERS}
BENCH_DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
UGATE_BIN=${UGATE_BIN:-$ROOT/build/ugate}
LIMIT_RELAY_SRC=${LIMIT_RELAY_SRC:-$ROOT/../shared/bench/limit_relay.c}
MODE=bench
case "${1:-}" in
  "") ;;
  --strace) MODE=strace ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "relay.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

die() { echo "relay.sh: error: $*" >&2; exit 1; }
log() { echo "$*" >&2; }

[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
for s in $BENCH_STREAMS; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "BENCH_STREAMS: bad stream count '$s'"; done
for p in $BENCH_PEERS; do
  [[ " $ALL_PEERS " == *" $p "* ]] || die "BENCH_PEERS: unknown peer '$p' (known: $ALL_PEERS)"
done
has_peer() { [[ " $BENCH_PEERS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install it (apt-get install $2)"; }
need iperf3 iperf3
need jq jq
need awk mawk
need setsid util-linux
need timeout coreutils
if [[ $MODE == strace ]]; then
  BENCH_PEERS="haproxy-splice haproxy-auto haproxy-nosplice ugate-splice ugate-copy limit_relay"
  [[ -x $UGATE_BIN ]] || BENCH_PEERS="haproxy-splice haproxy-auto haproxy-nosplice limit_relay"
  need strace strace
fi
if has_peer haproxy-splice || has_peer haproxy-nosplice; then need haproxy haproxy; fi
if has_peer socat; then need socat socat; need pgrep procps; fi
if has_peer limit_relay; then
  need gcc gcc
  [[ -f $LIMIT_RELAY_SRC ]] || die "limit_relay source not found at $LIMIT_RELAY_SRC (set LIMIT_RELAY_SRC)"
fi
if has_peer ugate-splice || has_peer ugate-copy; then
  [[ -x $UGATE_BIN ]] || die "$UGATE_BIN not found or not executable: run ./build.sh first" \
    "(or leave ugate out: BENCH_PEERS=\"direct haproxy-splice haproxy-nosplice socat limit_relay\")"
fi
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/ugate-relay-bench.XXXXXX)
PIDS=()
stop_pid() {  # stop a process started by start_bg (its whole process group)
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "relay.sh: error: command failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'log "relay.sh: interrupted"; exit 130' INT TERM

# start_bg LOGFILE CMD... : run CMD in its own session/process group; sets BG_PID
start_bg() {
  local logf=$1; shift
  setsid "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
forget_pid() { local p out=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || out+=("$p"); done; PIDS=("${out[@]}"); }

hexport() { printf '%04X' "$1"; }
port_in_use() {  # any socket bound to this local port (tcp/tcp6, any state)
  grep -qE "^ *[0-9]+: [0-9A-F]+:$(hexport "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
port_listening() {
  grep -qE "^ *[0-9]+: [0-9A-F]+:$(hexport "$1") [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
EPH_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
TAKEN=" "
free_port() {  # VAR : a free port below the ephemeral range (outgoing connections never take it)
  local p i lo=10000 hi=$((EPH_LOW - 1))
  ((hi > lo + 1000)) || { lo=40000; hi=60000; }
  for i in $(seq 500); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
    [[ $TAKEN == *" $p "* ]] && continue
    port_in_use "$p" && continue
    TAKEN+="$p "; printf -v "$1" '%s' "$p"; return 0
  done
  die "no free TCP port found"
}
show_log() { log "---- $1 (last lines)"; tail -n 20 "$1" >&2 || true; log "----"; }
wait_listen() {  # PORT PID LOG
  local i
  for i in $(seq 200); do
    port_listening "$1" && return 0
    kill -0 "$2" 2>/dev/null || { show_log "$3"; die "process $2 exited before listening on port $1"; }
    sleep 0.05
  done
  show_log "$3"; die "nothing listens on port $1 after 10 s"
}
wait_ready_line() {  # PID LOG : ugate prints "... info ready listeners=1"
  local i
  for i in $(seq 200); do
    grep -qE 'ready listeners=[0-9]+' "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || { show_log "$2"; die "ugate exited before printing its ready line"; }
    sleep 0.05
  done
  show_log "$2"; die "ugate printed no 'ready listeners=' line within 10 s"
}
cpu_ticks() {  # LEADER: its utime+stime+cutime+cstime (reaped children) + utime+stime of
  # the live processes of its process group (start_bg gives each relay its own group)
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^\([0-9]*\) (.*) /\1 /' |
    awk -v g="$1" '$4 == g { t += $13 + $14; if ($1 == g) t += $15 + $16 } END { print t + 0 }'
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# ---------------------------------------------------------------- iperf3 server
SRV_PORT=5201
if port_listening "$SRV_PORT"; then free_port SRV_PORT; log "port 5201 is busy; iperf3 server on $SRV_PORT"; fi
TAKEN+="$SRV_PORT "
SRV_PID=
start_server() {
  start_bg "$TMP/iperf3-server.log" iperf3 -s -B 127.0.0.1 -p "$SRV_PORT"
  SRV_PID=$BG_PID
  wait_listen "$SRV_PORT" "$SRV_PID" "$TMP/iperf3-server.log"
}
start_server

# ---------------------------------------------------------------- peers
LIMIT_BIN=
if has_peer limit_relay; then
  LIMIT_BIN=$TMP/limit_relay
  gcc -O2 -o "$LIMIT_BIN" "$LIMIT_RELAY_SRC" || die "could not compile $LIMIT_RELAY_SRC"
fi

haproxy_cfg() {  # FILE PORT MODE(splice|auto|nosplice)
  local opts=""
  case $3 in
    splice) opts=$'  option splice-request\n  option splice-response' ;;
    auto) opts='  option splice-auto' ;;
  esac
  cat >"$1" <<EOF
# generated by bench/relay.sh
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
$opts
frontend fe
  bind 127.0.0.1:$2
  default_backend be
backend be
  server s1 127.0.0.1:$SRV_PORT
EOF
}

# start_peer PEER : sets PEER_PORT, PEER_PID ("" for direct), PEER_LOG, IDLE_KB
start_peer() {
  local peer=$1
  PEER_LOG=$TMP/$peer.log; PEER_PID=; IDLE_KB=
  if [[ $peer == direct ]]; then PEER_PORT=$SRV_PORT; return 0; fi
  free_port PEER_PORT
  case $peer in
    ugate-splice) start_bg "$PEER_LOG" "$UGATE_BIN" run --forward "127.0.0.1:$PEER_PORT=127.0.0.1:$SRV_PORT" ;;
    ugate-copy) start_bg "$PEER_LOG" "$UGATE_BIN" run --no-splice --forward "127.0.0.1:$PEER_PORT=127.0.0.1:$SRV_PORT" ;;
    haproxy-splice | haproxy-auto | haproxy-nosplice)
      haproxy_cfg "$TMP/$peer.cfg" "$PEER_PORT" "${peer#haproxy-}"
      start_bg "$PEER_LOG" haproxy -db -f "$TMP/$peer.cfg" ;;
    socat) start_bg "$PEER_LOG" socat -b 131072 "TCP-LISTEN:$PEER_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$SRV_PORT" ;;
    limit_relay) start_bg "$PEER_LOG" "$LIMIT_BIN" "$PEER_PORT" "$SRV_PORT" ;;
  esac
  PEER_PID=$BG_PID
  if [[ $peer == ugate-* ]]; then
    wait_ready_line "$PEER_PID" "$PEER_LOG"
    port_listening "$PEER_PORT" || { show_log "$PEER_LOG"; die "ugate said ready but nothing listens on $PEER_PORT"; }
  else
    wait_listen "$PEER_PORT" "$PEER_PID" "$PEER_LOG"
  fi
  IDLE_KB=$(status_kb "$PEER_PID" VmRSS)
}
stop_peer() { [[ -n $PEER_PID ]] || return 0; stop_pid "$PEER_PID"; forget_pid "$PEER_PID"; PEER_PID=; }

ensure_server() { kill -0 "$SRV_PID" 2>/dev/null && return 0; log "iperf3 server died; restarting"; forget_pid "$SRV_PID"; start_server; }

# run_iperf PORT STREAMS SECONDS OUT.json
run_iperf() {  # in the background + wait, so that a signal to the script is handled at once
  local pid rc=0
  timeout $(($3 + 30)) iperf3 -c 127.0.0.1 -p "$1" -P "$2" -t "$3" -J >"$4" 2>"$4.err" </dev/null &
  pid=$!; PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}

# ---------------------------------------------------------------- --strace mode
if [[ $MODE == strace ]]; then
  secs=3
  printf '%-18s %9s %9s %9s %9s %9s %9s %9s\n' peer Gbit/s splice recvfrom sendto read write other
  for peer in $BENCH_PEERS; do
    ensure_server
    start_peer "$peer"
    strace -c -f -qq -p "$PEER_PID" -o "$TMP/$peer.strace" 2>/dev/null &
    st=$!; sleep 0.5
    run_iperf "$PEER_PORT" 1 "$secs" "$TMP/$peer.json" || true
    kill -INT "$st" 2>/dev/null || true; wait "$st" 2>/dev/null || true
    stop_peer
    gbps=$(jq -r '(.end.sum_received.bits_per_second // 0) / 1e9 | . * 100 | round / 100' "$TMP/$peer.json" 2>/dev/null || echo "?")
    awk -v peer="$peer" -v g="$gbps" '
      $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
        c[$NF] = $4; if ($NF !~ /^(splice|recvfrom|sendto|read|write)$/) other += $4 }
      END { printf "%-18s %9s %9d %9d %9d %9d %9d %9d\n", peer, g, c["splice"], c["recvfrom"], c["sendto"], c["read"], c["write"], other }
    ' "$TMP/$peer.strace"
  done
  echo "(one ${secs} s iperf3 stream each, strace -c -f attached to the relay; strace slows it down)"
  exit 0
fi

# ---------------------------------------------------------------- benchmark
LOAD0=$(awk '{print $1}' /proc/loadavg)
if awk -v l="$LOAD0" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average is $LOAD0 on $(nproc) CPUs: other work will skew the figures"
fi
RESULTS=$TMP/results.tsv   # round streams peer gbps bytes cpu_ticks peak_kb idle_kb
: >"$RESULTS"
read -r -a PEER_LIST <<<"$BENCH_PEERS"
NPEERS=${#PEER_LIST[@]}
NSTREAMS=$(wc -w <<<"$BENCH_STREAMS")
log "relay bench: peers=[$BENCH_PEERS] streams=[$BENCH_STREAMS] ${BENCH_SECONDS}s x ${BENCH_ROUNDS} rounds" \
  "(~$((NPEERS * NSTREAMS * BENCH_ROUNDS * (BENCH_SECONDS + 1))) s)"

sample_children_hwm() {  # PARENT OUTFILE : max VmHWM (kB) over the parent's children, until killed
  local parent=$1 out=$2 max=0 c v
  while :; do
    for c in $(pgrep -P "$parent" 2>/dev/null); do
      v=$(status_kb "$c" VmHWM); [[ -n $v ]] && ((v > max)) && max=$v && echo "$max" >"$out"
    done
    sleep 0.2
  done
}

measure() {  # ROUND STREAMS PEER
  local round=$1 streams=$2 peer=$3 json=$TMP/r$1-p$2-$3.json
  local c0=0 c1=0 peak= sampler= hwmf=$TMP/hwm-$peer i gbps bytes
  ensure_server
  start_peer "$peer"
  if [[ -n $PEER_PID ]]; then
    c0=$(cpu_ticks "$PEER_PID")
    if [[ $peer == socat ]]; then
      echo 0 >"$hwmf"; sample_children_hwm "$PEER_PID" "$hwmf" & sampler=$!; PIDS+=("$sampler")
    fi
  fi
  if ! run_iperf "$PEER_PORT" "$streams" "$BENCH_SECONDS" "$json"; then
    log "!! iperf3 through $peer (-P $streams) failed:"; cat "$json.err" >&2 || true
    jq -r '.error // empty' "$json" >&2 2>/dev/null || true
    [[ -n $sampler ]] && { stop_pid "$sampler"; forget_pid "$sampler"; }
    show_log "$PEER_LOG"; stop_peer
    printf '%s\t%s\t%s\tNA\tNA\tNA\tNA\t%s\n' "$round" "$streams" "$peer" "${IDLE_KB:-NA}" >>"$RESULTS"
    return 0
  fi
  if [[ -n $PEER_PID ]]; then
    if [[ $peer == socat ]]; then
      # socat forks one child per connection; its CPU time reaches the parent's
      # cutime/cstime once the child is reaped, so wait for that.
      for i in $(seq 100); do [[ -z $(pgrep -P "$PEER_PID") ]] && break; sleep 0.05; done
      stop_pid "$sampler"; forget_pid "$sampler"
      peak=$(cat "$hwmf")
    else
      peak=$(status_kb "$PEER_PID" VmHWM)
    fi
    c1=$(cpu_ticks "$PEER_PID")
  fi
  stop_peer
  gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9' "$json")
  bytes=$(jq -r '.end.sum_received.bytes' "$json")
  if [[ -n $peak ]]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$streams" "$peer" "$gbps" "$bytes" "$((c1 - c0))" "$peak" "${IDLE_KB:-NA}" >>"$RESULTS"
  else
    printf '%s\t%s\t%s\t%s\t%s\tNA\tNA\tNA\n' "$round" "$streams" "$peer" "$gbps" "$bytes" >>"$RESULTS"
  fi
  log "$(printf '  round %s  -P %-2s %-17s %6.2f Gbit/s' "$round" "$streams" "$peer" "$gbps")"
}

for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  for s in $BENCH_STREAMS; do
    for ((k = 0; k < NPEERS; k++)); do   # rotate the start peer every round
      measure "$r" "$s" "${PEER_LIST[$(((k + r - 1) % NPEERS))]}"
    done
  done
done

# ---------------------------------------------------------------- report
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(uname -m)
MACHINE="$(nproc) CPUs, $CPU_MODEL, kernel $(uname -r); load average $LOAD0 before, $(awk '{print $1}' /proc/loadavg) after"
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "no commit")
VERSIONS="$(iperf3 --version | head -1 | awk '{print "iperf3 " $2}')"
if has_peer haproxy-splice || has_peer haproxy-nosplice; then VERSIONS+=", haproxy $(haproxy -v | awk 'NR==1 {print $3}')"; fi
if has_peer socat; then VERSIONS+=", socat $(socat -V | awk '/socat version/ {print $3; exit}')"; fi

REPORT=$TMP/report.md
awk -F'\t' -v peers="$BENCH_PEERS" -v streams="$BENCH_STREAMS" -v tck="$CLK_TCK" \
    -v date="$DATE" -v machine="$MACHINE" -v secs="$BENCH_SECONDS" -v rounds="$BENCH_ROUNDS" \
    -v rev="$REV" -v versions="$VERSIONS" '
function median(s,   a, n, i, j, t) {   # s: space-separated numbers
  n = split(s, a, " "); if (n == 0) return ""
  for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function mean(s,   a, n, i, t) { n = split(s, a, " "); if (n == 0) return ""; for (i = 1; i <= n; i++) t += a[i]; return t / n }
function maxof(s,   a, n, i, m) { n = split(s, a, " "); if (n == 0) return ""; m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
function add(arr, k, v) { if (v != "NA" && v != "") arr[k] = (k in arr) ? arr[k] " " v : v }
function mib(s) { return (s == "") ? "–" : sprintf("%.1f", maxof(s) / 1024) }
function f(x, fmt) { return (x == "") ? "–" : sprintf(fmt, x) }
# per-round ratio of two peers (same round, same stream count), median over rounds
function pratio(a, b, s,   r, l) {
  l = ""
  for (r = 1; r <= rounds; r++) if ((r, s, a) in G && (r, s, b) in G && G[r, s, b] > 0) l = l " " G[r, s, a] / G[r, s, b]
  return median(l)
}
function cpugb(p, s) { return median(CPU[s, p]) }
function verdict(ok, have) { return have ? (ok ? "**PASS**" : "**MISS**") : "n/a" }
{
  r = $1; s = $2; p = $3
  if ($4 != "NA") { G[r, s, p] = $4; add(GB, s SUBSEP p, $4) } else FAIL[s, p]++
  if ($4 != "NA" && $6 != "NA" && $5 > 0) add(CPU, s SUBSEP p, ($6 / tck) / ($5 / 1e9))
  add(PEAK, s SUBSEP p, $7); add(IDLE, s SUBSEP p, $8); add(IDLEP, p, $8)
}
END {
  np = split(peers, P, " "); ns = split(streams, S, " ")
  desc["direct"] = "iperf3 client → server, no relay"
  desc["ugate-splice"] = "ugate run --forward (splice)"
  desc["ugate-copy"] = "ugate run --no-splice --forward"
  desc["haproxy-splice"] = "haproxy tcp, option splice-request/-response"
  desc["haproxy-nosplice"] = "haproxy tcp, no splice"
  desc["socat"] = "socat -b 131072 …,fork"
  desc["limit_relay"] = "minimal epoll+splice relay (yardstick)"
  print "Last run: " date " — " machine "."
  print "iperf3 " secs " s per run, " rounds " round(s), peers in rotation; ugate rev " rev "; " versions "."
  print ""
  print "| peer | -P | Gbit/s (median) | per round | × direct | CPU s/GB | peak RSS MiB | idle RSS MiB |"
  print "|---|---:|---:|---|---:|---:|---:|---:|"
  for (i = 1; i <= ns; i++) for (j = 1; j <= np; j++) {
    s = S[i]; p = P[j]; k = s SUBSEP p
    n = split(GB[k], tmp, " "); pr = ""
    for (t = 1; t <= n; t++) pr = pr (t > 1 ? " / " : "") sprintf("%.2f", tmp[t])
    if ((s, p) in FAIL) pr = pr (pr == "" ? "" : " / ") FAIL[s, p] " failed"
    xd = (p == "direct") ? "" : pratio(p, "direct", s)
    printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p, s, f(median(GB[k]), "%.2f"), pr, \
      (p == "direct") ? "1" : f(xd, "%.2f"), f(median(CPU[k]), "%.2f"), \
      mib(PEAK[k]), mib(IDLE[k])
  }
  print ""
  print "Ratios (median of the per-round ratios; same round, same stream count):"
  print ""
  for (i = 1; i <= ns; i++) {
    s = S[i]
    printf "- -P %s: ugate splice / haproxy splice = %s; ugate copy / haproxy no-splice = %s; ugate splice / limit_relay = %s; ugate splice / socat = %s\n", s, \
      f(pratio("ugate-splice", "haproxy-splice", s), "%.2f"), f(pratio("ugate-copy", "haproxy-nosplice", s), "%.2f"), \
      f(pratio("ugate-splice", "limit_relay", s), "%.2f"), f(pratio("ugate-splice", "socat", s), "%.2f")
    printf "- -P %s: CPU s/GB ugate splice %s vs haproxy splice %s; ugate copy %s vs haproxy no-splice %s; limit_relay %s\n", s, \
      f(cpugb("ugate-splice", s), "%.2f"), f(cpugb("haproxy-splice", s), "%.2f"), \
      f(cpugb("ugate-copy", s), "%.2f"), f(cpugb("haproxy-nosplice", s), "%.2f"), f(cpugb("limit_relay", s), "%.2f")
  }
  print ""
  print "Targets:"
  print ""
  for (i = 1; i <= ns; i++) {
    s = S[i]; x = pratio("ugate-splice", "haproxy-splice", s)
    printf "- %s ugate splice ≥ 1.0 × haproxy forced splice, -P %s: %s\n", verdict(x >= 1.0, x != ""), s, f(x, "%.3f ×")
    a = cpugb("ugate-splice", s); b = cpugb("haproxy-splice", s)
    printf "- %s ugate splice uses fewer CPU s/GB than haproxy forced splice, -P %s: %s vs %s\n", verdict(a < b, a != "" && b != ""), s, f(a, "%.2f"), f(b, "%.2f")
    x = pratio("ugate-copy", "haproxy-nosplice", s)
    printf "- %s ugate copy ≥ 0.9 × haproxy without splice, -P %s: %s\n", verdict(x >= 0.9, x != ""), s, f(x, "%.3f ×")
  }
  a = maxof(IDLEP["ugate-splice"] " " IDLEP["ugate-copy"])
  printf "- %s ugate idle RSS ≤ 3 MiB (VmRSS right after the ready line, largest seen): %s\n", verdict(a <= 3072, a != ""), f(a == "" ? "" : a / 1024, "%.2f MiB")
  print ""
  print "Columns: Gbit/s = iperf3 `end.sum_received`; × direct = per-round ratio to the direct run of the same round;"
  print "CPU s/GB = utime+stime(+cutime+cstime) of the relay process from /proc/PID/stat per 10^9 bytes received"
  print "(socat: the parent after it reaped its per-connection children, so their CPU is included);"
  print "peak RSS = VmHWM of the relay (socat: the largest of its per-connection children, sampled every 0.2 s);"
  print "idle RSS = VmRSS right after the relay is up (ugate: after its `ready` line; socat: the listening parent)."
}' "$RESULTS" >"$REPORT"

echo
cat "$REPORT"

# ---------------------------------------------------------------- docs/performance.md
BEGIN_MARK='<!-- BEGIN bench/relay.sh output (generated; edit outside these markers) -->'
END_MARK='<!-- END bench/relay.sh output -->'
if [[ $BENCH_DOC != - ]]; then
  if [[ ! -f $BENCH_DOC ]]; then
    mkdir -p "$(dirname "$BENCH_DOC")"
    printf '# Performance\n\n%s\n%s\n' "$BEGIN_MARK" "$END_MARK" >"$BENCH_DOC"
  fi
  if ! grep -qF "$BEGIN_MARK" "$BENCH_DOC" || ! grep -qF "$END_MARK" "$BENCH_DOC"; then
    printf '\n%s\n%s\n' "$BEGIN_MARK" "$END_MARK" >>"$BENCH_DOC"
  fi
  awk -v b="$BEGIN_MARK" -v e="$END_MARK" -v rep="$REPORT" '
    $0 == b { print; while ((getline l < rep) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }
  ' "$BENCH_DOC" >"$TMP/doc.new"
  cat "$TMP/doc.new" >"$BENCH_DOC"
  log "wrote $BENCH_DOC"
fi
