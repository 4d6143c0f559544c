#!/usr/bin/env bash
# bench/run.sh — `make bench`: the whole benchmark suite, one report (not a test).
#
# Every section runs its peers in rotation (the start peer moves each round),
# BENCH_ROUNDS times, each peer a fresh process, so drift shows in the
# per-round figures; ratios are per round against a peer of the same round.
# (snirelay keeps one order and one relay/gate pair for all rounds; meshrelay
# rotates but starts its three gates once.)
#   relay        iperf3 throughput through TCP relays (bench/relay.sh)
#   conn         connections/s, CPU per connection and latency, one HTTP
#                request per connection (wrk -H "Connection: close"; SOCKS5
#                through bench/connload.c): ugate forward, ugate mixed
#                (SOCKS5), haproxy mode tcp, nginx stream, and the yardsticks
#                limit-forward and limit-socks (bench/limit-conn.c: about the
#                least a relay can do per connection)
#   socks        SOCKS5 bulk: curl --socks5-hostname, one file from nginx:
#                ugate vs microsocks vs dante-server
#   transparent  iperf3 captured by nftables REDIRECT, in network namespaces
#                the suite creates: ugate vs redsocks → microsocks
#   udp          iperf3 -u captured by TPROXY (bench/udp.sh): ugate vs kernel
#                forwarding vs socat vs a minimal user-space relay (the
#                yardstick), 1 400- and 64-byte datagrams; the same
#                through bench/udp-flood.c (flood mode: the relay the limit);
#                memory per idle flow (BENCH_FLOWS of them)
#   memory       idle RSS, and the RSS delta per idle relayed connection
#                (BENCH_HOLD of them): ugate vs haproxy vs nginx stream
#   footprint    binary and .ipk sizes (runs build.sh ipk; BENCH_QUICK: build/ipk
#                if built), start → accepting
#   snirelay     relay over SNI vs direct vs limit_relay: throughput, relay CPU
#                per GB, connection setup time (bench/sni-relay.sh; its table
#                goes into the report as printed)
#   meshrelay    gate B → gate A by node name through a relay (double HBONE)
#                vs through the SNI relay vs direct vs limit_relay: iperf3 and
#                bulk throughput, relay CPU per GB, setup time (bench/mesh-relay.sh;
#                its table goes into the report as printed)
#   hbone        HBONE tunnels in network namespaces (bench/hbone.sh): iperf3
#                through one tunnel ugate → ugate vs direct vs ugate → the
#                Node ztunnel-like peer vs a plain relay pair (copy, splice)
#                and TLS relay pairs (stunnel4, socat): the yardsticks), CPU
#                per GB of each side, new streams/s
#                on a warm tunnel, TLS + HTTP/2 handshakes/s (its report goes
#                into this one as printed)
# Then it rewrites the generated section of docs/performance.md and the charts
# in docs/img/ (gnuplot). Installs the peers it needs (Debian packages) first.
#
# Environment (defaults; BENCH_QUICK=1 makes every size small, ~2 min):
#   BENCH_SECTIONS="relay conn socks transparent udp memory footprint snirelay meshrelay hbone"
#   BENCH_ROUNDS=3          rounds of every section (relay.sh: 2)
#   BENCH_SECONDS=10        seconds per timed run (conn, transparent, relay)
#   BENCH_CONNS=50          concurrent connections of the conn load (wrk -c)
#   BENCH_SOCKS_MIB=1024    size of the SOCKS5 bulk download
#   BENCH_HOLD=1000         idle relayed connections of the memory section
#   BENCH_FLOWS=10000       idle UDP flows of the udp section
#   BENCH_STARTS=10         start → accepting measurements per peer
#   BENCH_DOC=docs/performance.md   "-" = print the report, write no file
#   UGATE_BIN=build/ugate
#   UGATE_BASE_BIN=         another ugate (say main's), measured in the same run:
#                           base-forward and base-mixed in conn, base-forward in
#                           memory, base-ugate in footprint, base in udp (udp.sh)
#   LIMIT_RELAY_SRC=../shared/bench/limit_relay.c (relay.sh's yardstick; left out if absent)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# log, die, start_bg, stop_bg, free_port, wait_listen, cpu_ticks, ...; TMP, CLEANUP
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $# -eq 0 ]] || bad_arg "$1"

QUICK=${BENCH_QUICK:-0}
ALL_SECTIONS="relay conn socks transparent udp memory footprint snirelay meshrelay hbone"
if [[ $QUICK == 1 ]]; then
  : "${BENCH_ROUNDS:=2}" "${BENCH_SECONDS:=2}" "${BENCH_SOCKS_MIB:=128}" "${BENCH_HOLD:=200}" "${BENCH_STARTS:=3}" "${BENCH_FLOWS:=1000}"
fi
SECTIONS=${BENCH_SECTIONS:-$ALL_SECTIONS}
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_RUN=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-50}
SOCKS_MIB=${BENCH_SOCKS_MIB:-1024}
HOLD=${BENCH_HOLD:-1000}
STARTS=${BENCH_STARTS:-10}
FLOWS=${BENCH_FLOWS:-10000}
BENCH_DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
UGATE_BIN=${UGATE_BIN:-$ROOT/build/ugate}
[[ -z ${UGATE_BASE_BIN:-} || -x $UGATE_BASE_BIN ]] || die "UGATE_BASE_BIN: $UGATE_BASE_BIN is not an executable"
LIMIT_RELAY_SRC=${LIMIT_RELAY_SRC:-$ROOT/../shared/bench/limit_relay.c}
for v in ROUNDS SECONDS_RUN CONNS SOCKS_MIB HOLD STARTS FLOWS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_${v%_RUN}: '${!v}' is not a positive integer"
done
for s in $SECTIONS; do [[ " $ALL_SECTIONS " == *" $s "* ]] || die "BENCH_SECTIONS: unknown section '$s' (known: $ALL_SECTIONS)"; done
has() { [[ " $SECTIONS " == *" $1 "* ]]; }
[[ -x $UGATE_BIN ]] || die "$UGATE_BIN not found: run make (or ./build.sh) first"
for s in transparent udp hbone; do
  has $s && [[ $(id -u) != 0 ]] && die "the $s section needs root (network namespaces, nftables); run as root or leave it out of BENCH_SECTIONS"
done

# ---------------------------------------------------------------- tools
apt_install wrk haproxy nginx-light libnginx-mod-stream dante-server redsocks microsocks gnuplot-nox \
  iperf3 socat jq curl gcc nftables iproute2
for c in wrk haproxy nginx danted redsocks microsocks gnuplot iperf3 jq curl gcc nft ip; do need "$c" "$c"; done
CONNLOAD=$TMP/connload
gcc -O2 -Wall -Wextra -pthread -o "$CONNLOAD" "$ROOT/bench/connload.c" || die "cannot compile bench/connload.c"
LIMIT_CONN=$TMP/limit-conn
gcc -O2 -Wall -Wextra -o "$LIMIT_CONN" "$ROOT/bench/limit-conn.c" || die "cannot compile bench/limit-conn.c"
ulimit -n "$(ulimit -Hn)"  # BENCH_HOLD connections: two descriptors each in a relay
HAPROXY_MAXCONN=$((($(ulimit -n) - 100) / 2))  # haproxy refuses a maxconn its descriptors cannot hold
((HAPROXY_MAXCONN <= 8000)) || HAPROXY_MAXCONN=8000
((HAPROXY_MAXCONN > HOLD + 100)) || die "the descriptor limit ($(ulimit -n)) is too low for BENCH_HOLD=$HOLD"

RESULTS=$TMP/results.tsv  # section round peer metric value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
# rotate SECTION FUNC PEER... : FUNC ROUND PEER for every round, the start peer moving each round
rotate() {
  local section=$1 fn=$2 r k; shift 2
  local peers=("$@") n=$#
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do "$fn" "$r" "${peers[$(((k + r - 1) % n))]}"; done
  done
  log "$section: done"
}
per_sec() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6g", (b > 0) ? a / b : 0 }'; }

# ---------------------------------------------------------------- origin (nginx)
start_origin "$SOCKS_MIB"

# ---------------------------------------------------------------- relay peers
haproxy_conf() {  # FILE PORT TARGET_PORT
  cat >"$1" <<EOF
# generated by bench/run.sh
global
  maxconn $HAPROXY_MAXCONN
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend fe
  bind 127.0.0.1:$2
  default_backend be
backend be
  server s1 127.0.0.1:$3
EOF
}
ugate_of() { if [[ $1 == base-* ]]; then echo "$UGATE_BASE_BIN"; else echo "$UGATE_BIN"; fi; }
# start_relay PEER PORT TARGET_PORT : sets PEER_PID (the relay listens on 127.0.0.1:PORT)
start_relay() {
  local peer=$1 port=$2 target=$3 logf=$TMP/$1.log
  case $peer in
    ugate-forward | base-forward)
      ugate_conf "$TMP/$peer.json" "{ \"name\": \"fwd\", \"type\": \"forward\", \"listen\": \"127.0.0.1:$port\", \"target\": \"127.0.0.1:$target\" }"
      start_bg "$logf" "$(ugate_of "$peer")" run --config "$TMP/$peer.json" ;;
    ugate-mixed | base-mixed)
      ugate_conf "$TMP/$peer.json" "{ \"name\": \"mixed\", \"type\": \"mixed\", \"listen\": \"127.0.0.1:$port\" }"
      start_bg "$logf" "$(ugate_of "$peer")" run --config "$TMP/$peer.json" ;;
    haproxy)
      haproxy_conf "$TMP/$peer.cfg" "$port" "$target"
      start_bg "$logf" haproxy -db -f "$TMP/$peer.cfg" ;;
    nginx-stream)
      nginx_conf "$TMP/$peer.conf" "$peer" "stream { server { listen 127.0.0.1:$port; proxy_pass 127.0.0.1:$target; } }"
      start_bg "$logf" nginx -c "$TMP/$peer.conf" -p "$TMP/$peer" ;;
    limit-forward) start_bg "$logf" "$LIMIT_CONN" forward "$port" "$target" ;;
    limit-socks) start_bg "$logf" "$LIMIT_CONN" socks "$port" ;;
    microsocks) start_bg "$logf" microsocks -i 127.0.0.1 -p "$port" ;;
    dante)
      cat >"$TMP/$peer.conf" <<EOF
# generated by bench/run.sh
logoutput: stderr
internal: 127.0.0.1 port = $port
external: 127.0.0.1
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
EOF
      start_bg "$logf" danted -f "$TMP/$peer.conf" -p "$TMP/$peer.pid" ;;
    *) die "unknown relay peer '$peer'" ;;
  esac
  PEER_PID=$BG_PID
  if [[ $peer == ugate-* || $peer == base-* ]]; then wait_ready_line "$PEER_PID" "$logf"; fi
  wait_listen "$port" "$PEER_PID" "$logf"
}

# ---------------------------------------------------------------- relay (throughput)
section_relay() {
  local plist="direct ugate-splice ugate-copy haproxy-splice haproxy-nosplice socat limit_relay" streams="1 4" rounds=2
  [[ -f $LIMIT_RELAY_SRC ]] || { log "relay: no $LIMIT_RELAY_SRC: limit_relay left out"; plist=${plist% limit_relay}; }
  [[ $QUICK == 1 ]] && { streams=1; rounds=1; }
  mkdir -p "$TMP/relay"
  BENCH_PEERS=$plist BENCH_STREAMS=${BENCH_STREAMS:-$streams} BENCH_ROUNDS=${BENCH_ROUNDS:-$rounds} \
    BENCH_SECONDS=$SECONDS_RUN BENCH_DOC=- BENCH_OUT=$TMP/relay UGATE_BIN=$UGATE_BIN LIMIT_RELAY_SRC=$LIMIT_RELAY_SRC \
    "$ROOT/bench/relay.sh" >"$TMP/relay.out" || { cat "$TMP/relay.out" >&2; die "bench/relay.sh failed"; }
  # relay.sh's rows: round streams peer gbps bytes cpu_ticks peak_kb idle_kb
  awk -F'\t' -v tck="$CLK_TCK" '$4 != "NA" {
    printf "relay\t%s\t%s -P%s\tgbps\t%s\n", $1, $3, $2, $4
    if ($6 != "NA" && $5 > 0) printf "relay\t%s\t%s -P%s\tcpu_s_gb\t%.6g\n", $1, $3, $2, ($6 / tck) / ($5 / 1e9)
  }' "$TMP/relay/results.tsv" >>"$RESULTS"
}

# ---------------------------------------------------------------- relay over SNI
section_snirelay() {
  BENCH_SECONDS=$SECONDS_RUN BENCH_ROUNDS=$ROUNDS UGATE_BIN=$UGATE_BIN LIMIT_RELAY_SRC=$LIMIT_RELAY_SRC \
    "$ROOT/bench/sni-relay.sh" >"$TMP/snirelay.out" || { cat "$TMP/snirelay.out" >&2; die "bench/sni-relay.sh failed"; }
}

# ---------------------------------------------------------------- relay by node name
section_meshrelay() {
  BENCH_SECONDS=$SECONDS_RUN BENCH_ROUNDS=$ROUNDS UGATE_BIN=$UGATE_BIN LIMIT_RELAY_SRC=$LIMIT_RELAY_SRC \
    "$ROOT/bench/mesh-relay.sh" >"$TMP/meshrelay.out" || { cat "$TMP/meshrelay.out" >&2; die "bench/mesh-relay.sh failed"; }
}

# ---------------------------------------------------------------- hbone
section_hbone() {
  mkdir -p "$TMP/hbone"
  BENCH_SECONDS=$SECONDS_RUN BENCH_ROUNDS=$ROUNDS BENCH_DOC=- BENCH_OUT=$TMP/hbone UGATE_BIN=$UGATE_BIN \
    "$ROOT/bench/hbone.sh" >"$TMP/hbone.out" || { cat "$TMP/hbone.out" >&2; die "bench/hbone.sh failed"; }
}

# ---------------------------------------------------------------- conn
wrk_us() {  # wrk latency (1.23ms, 456.78us, 1.2s) → µs
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    printf "%.0f", n * (u == "us" ? 1 : u == "ms" ? 1000 : u == "s" ? 1e6 : u == "m" ? 6e7 : 1) }'
}
conn_run() {  # ROUND PEER
  local r=$1 peer=$2 port=$ORIGIN pid="" c0=0 c1 res=$TMP/conn-$1-$2.out reqs rps p50 p99 errs
  case $peer in
    direct | direct-connload) ;;
    *) free_port port; start_relay "${peer%-connload}" "$port" "$ORIGIN"; pid=$PEER_PID; c0=$(cpu_ticks "$pid") ;;
  esac
  case $peer in
    ugate-mixed | base-mixed | limit-socks) "$CONNLOAD" http "$port" "127.0.0.1:$ORIGIN" "$CONNS" 2 "$SECONDS_RUN" >"$res" ;;
    *-connload) "$CONNLOAD" http "$port" - "$CONNS" 2 "$SECONDS_RUN" >"$res" ;;
    *) wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -H "Connection: close" "http://127.0.0.1:$port/small" >"$res" ;;
  esac
  if [[ -n $pid ]]; then c1=$(cpu_ticks "$pid"); stop_bg "$pid"; fi
  if grep -q '^requests=' "$res"; then
    reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$res"); rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' "$res")
    p50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' "$res"); p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' "$res")
    errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$res")
  else
    reqs=$(awk '/requests in/ {print $1}' "$res"); rps=$(awk '/^Requests\/sec:/ {print $2}' "$res")
    p50=$(wrk_us "$(awk '$1 == "50%" {print $2}' "$res")"); p99=$(wrk_us "$(awk '$1 == "99%" {print $2}' "$res")")
    errs=$(awk '/Socket errors/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 } /Non-2xx/ { s += $NF } END { print s + 0 }' "$res")
  fi
  [[ -n $rps && -n $reqs ]] || { cat "$res" >&2; die "conn: no result from the load client for $peer"; }
  record conn "$r" "$peer" rps "$rps"
  record conn "$r" "$peer" p50_ms "$(per_sec "$p50" 1000)"
  record conn "$r" "$peer" p99_ms "$(per_sec "$p99" 1000)"
  record conn "$r" "$peer" errors "${errs:-0}"
  [[ -z $pid ]] || record conn "$r" "$peer" cpu_us "$(per_sec "$(((c1 - c0) * 1000000 / CLK_TCK))" "$reqs")"
  log "$(printf '  conn round %s %-22s %8.0f conn/s  p99 %s µs' "$r" "$peer" "$rps" "$p99")"
}
section_conn() {
  local base=()
  [[ -z ${UGATE_BASE_BIN:-} ]] || base=(base-forward base-mixed)
  rotate conn conn_run direct direct-connload ugate-forward ugate-mixed "${base[@]}" haproxy haproxy-connload nginx-stream \
    limit-forward limit-socks
}

# ---------------------------------------------------------------- socks
socks_run() {  # ROUND PEER
  local r=$1 peer=$2 port c0 c1 out
  free_port port
  start_relay "$peer" "$port" "$ORIGIN"
  c0=$(cpu_ticks "$PEER_PID")
  out=$(curl -sS --socks5-hostname "127.0.0.1:$port" "http://localhost:$ORIGIN/big" -o /dev/null \
    -w '%{speed_download} %{size_download}' 2>"$TMP/curl.err") || { cat "$TMP/curl.err" >&2; show_log "$TMP/$peer.log"; die "socks: curl through $peer failed"; }
  c1=$(cpu_ticks "$PEER_PID")
  stop_bg "$PEER_PID"
  read -r speed size <<<"$out"
  [[ $size == $((SOCKS_MIB * 1048576)) ]] || die "socks: $peer delivered $size bytes, not $((SOCKS_MIB * 1048576))"
  record socks "$r" "$peer" gbps "$(per_sec "$speed" 125000000)"
  record socks "$r" "$peer" cpu_s_gb "$(per_sec "$(per_sec "$((c1 - c0))" "$CLK_TCK")" "$(per_sec "$size" 1000000000)")"
  log "$(printf '  socks round %s %-12s %6.2f Gbit/s' "$r" "$peer" "$(per_sec "$speed" 125000000)")"
}
section_socks() { rotate socks socks_run ugate-mixed microsocks dante; }

# ---------------------------------------------------------------- transparent
# cli (10.201.1.2) — gw (10.201.1.1 | 10.201.2.1) — srv (10.201.2.2); the gw
# routes, and REDIRECTs the client's port 5201 to the relay running in it.
NS=ubench$$
netns_up() {
  netns_trio 10.201.1.2 10.201.1.1 10.201.2.1 10.201.2.2
  nsx gw nft -f - <<'EOF'
table ip ubench {
  chain pre { type nat hook prerouting priority dstnat; }
}
EOF
}
redirect_to() {  # PORT|"" : the gw's REDIRECT of the client's iperf3 traffic (none = routed)
  nsx gw nft flush chain ip ubench pre
  [[ -z $1 ]] || nsx gw nft add rule ip ubench pre iifname g1 tcp dport 5201 redirect to :"$1"
}
transparent_run() {  # ROUND PEER
  local r=$1 peer=$2 port=15001 pids=() c0=0 c1=0 json=$TMP/tp-$1-$2.json gbps bytes logf=$TMP/tp-$2.log
  case $peer in
    direct) redirect_to "" ;;
    ugate-redirect)
      ugate_conf "$TMP/tp-ugate.json" "{ \"name\": \"tproxy\", \"type\": \"redirect\", \"listen\": \"0.0.0.0:$port\" }"
      start_bg "$logf" ip netns exec "$NS-gw" "$UGATE_BIN" run --config "$TMP/tp-ugate.json"; pids+=("$BG_PID")
      wait_ready_line "$BG_PID" "$logf" ;;
    redsocks)
      start_bg "$TMP/tp-microsocks.log" ip netns exec "$NS-gw" microsocks -i 127.0.0.1 -p 1080; pids+=("$BG_PID")
      wait_listen 1080 "$BG_PID" "$TMP/tp-microsocks.log" netns
      cat >"$TMP/redsocks.conf" <<EOF
base { log_debug = off; log_info = off; log = stderr; daemon = off; redirector = iptables; }
redsocks { local_ip = 0.0.0.0; local_port = $port; ip = 127.0.0.1; port = 1080; type = socks5; }
EOF
      start_bg "$logf" ip netns exec "$NS-gw" redsocks -c "$TMP/redsocks.conf"; pids+=("$BG_PID") ;;
  esac
  if ((${#pids[@]})); then
    wait_listen "$port" "${pids[-1]}" "$logf" netns
    redirect_to "$port"
    c0=$(cpu_ticks "${pids[@]}")
  fi
  timeout $((SECONDS_RUN + 30)) ip netns exec "$NS-cli" iperf3 -c 10.201.2.2 -p 5201 -t "$SECONDS_RUN" -J >"$json" 2>&1 ||
    { cat "$json" >&2; [[ ! -f $logf ]] || show_log "$logf"; die "transparent: iperf3 through $peer failed"; }
  if ((${#pids[@]})); then
    c1=$(cpu_ticks "${pids[@]}")
    local p; for p in "${pids[@]}"; do stop_bg "$p"; done
  fi
  gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9' "$json")
  bytes=$(jq -r '.end.sum_received.bytes' "$json")
  record transparent "$r" "$peer" gbps "$gbps"
  [[ $peer == direct ]] || record transparent "$r" "$peer" cpu_s_gb "$(per_sec "$(per_sec "$((c1 - c0))" "$CLK_TCK")" "$(per_sec "$bytes" 1000000000)")"
  log "$(printf '  transparent round %s %-15s %6.2f Gbit/s' "$r" "$peer" "$gbps")"
}
section_transparent() {
  netns_up
  start_bg "$TMP/tp-iperf3.log" ip netns exec "$NS-srv" iperf3 -s -B 10.201.2.2 -p 5201
  wait_listen 5201 "$BG_PID" "$TMP/tp-iperf3.log" netns
  rotate transparent transparent_run direct ugate-redirect redsocks
}

# ---------------------------------------------------------------- udp
section_udp() {
  mkdir -p "$TMP/udp"
  BENCH_SECONDS=$SECONDS_RUN BENCH_ROUNDS=$ROUNDS BENCH_FLOWS=$FLOWS BENCH_DOC=- BENCH_OUT=$TMP/udp UGATE_BIN=$UGATE_BIN \
    "$ROOT/bench/udp.sh" >"$TMP/udp.out" || { cat "$TMP/udp.out" >&2; die "bench/udp.sh failed"; }
  # udp.sh's rows: round size peer metric value (size "idle": the memory run; "held": 1 400 B with the flows held;
  # "fFLOWS:SIZE": flood mode)
  awk -F'\t' '$2 != "idle" && ($4 == "pps" || $4 == "cpu_s_mpk") { k = $2 == "held" ? "1400 B, flows held" : $2 " B"
      if ($2 ~ /^f/) { split(substr($2, 2), a, ":"); k = a[2] " B flood, " a[1] " flows" }
      printf "udp\t%s\t%s %s\t%s\t%s\n", $1, $3, k, $4, $5 }' \
    "$TMP/udp/results.tsv" >>"$RESULTS"
}

# ---------------------------------------------------------------- memory
memory_run() {  # ROUND PEER
  local r=$1 peer=$2 port idle held fifo=$TMP/hold.fifo out=$TMP/hold.out hp
  free_port port
  start_relay "$peer" "$port" "$ECHO"
  idle=$(group_rss_kb "$PEER_PID")
  rm -f "$fifo"; mkfifo "$fifo"
  # shellcheck disable=SC2016  # expanded by the inner bash
  start_bg "$out" bash -c 'exec "$1" hold "$2" "$3" <"$4"' hold "$CONNLOAD" "$port" "$HOLD" "$fifo"; hp=$BG_PID
  exec 9>"$fifo"
  wait_held "$hp" "$out" 30 "memory: $HOLD connections through $peer"
  held=$(group_rss_kb "$PEER_PID")
  exec 9>&-
  stop_bg "$hp"; stop_bg "$PEER_PID"
  record memory "$r" "$peer" idle_kb "$idle"
  record memory "$r" "$peer" conn_bytes "$(((held - idle) * 1024 / HOLD))"
  log "  memory round $r $peer: idle $idle kB, $(((held - idle) * 1024 / HOLD)) B per connection"
}
section_memory() {
  free_port ECHO
  start_bg "$TMP/echo.log" "$CONNLOAD" echo "$ECHO"
  wait_listen "$ECHO" "$BG_PID" "$TMP/echo.log"
  local base=()
  [[ -z ${UGATE_BASE_BIN:-} ]] || base=(base-forward)
  rotate memory memory_run ugate-forward "${base[@]}" haproxy nginx-stream
}

# ---------------------------------------------------------------- footprint
start_run() {  # ROUND PEER
  local r=$1 peer=$2 port i ms cpu out cmd
  free_port port
  case $peer in
    ugate | base-ugate) cmd=("$(ugate_of "$peer")" run --forward "127.0.0.1:$port=127.0.0.1:$ORIGIN") ;;
    haproxy) haproxy_conf "$TMP/start.cfg" "$port" "$ORIGIN"; cmd=(haproxy -db -f "$TMP/start.cfg") ;;
    nginx-stream)
      nginx_conf "$TMP/start.conf" start "stream { server { listen 127.0.0.1:$port; proxy_pass 127.0.0.1:$ORIGIN; } }"
      cmd=(nginx -c "$TMP/start.conf" -p "$TMP/start") ;;
    microsocks) cmd=(microsocks -i 127.0.0.1 -p "$port") ;;
  esac
  for ((i = 1; i <= STARTS; i++)); do
    out=$("$CONNLOAD" startup "$port" 10000 "${cmd[@]}") || die "footprint: $peer did not start"
    read -r ms cpu <<<"$out"
    record footprint "$r" "$peer" start_ms "$ms"
    record footprint "$r" "$peer" start_cpu_ms "$cpu"
  done
}
section_footprint() {
  local f arch size
  record footprint 1 ugate binary_kib "$(per_sec "$(stat -c %s "$UGATE_BIN")" 1024)"
  # the .ipk of every arch, from this tree (build.sh caches: the first run
  # builds the cross toolchains, later ones only what changed)
  if [[ $QUICK == 1 ]]; then
    log "footprint: BENCH_QUICK: .ipk sizes only from an existing build/ipk (build.sh ipk not run)"
  else
    log "footprint: build.sh ipk (the first time it builds the cross toolchains: several minutes per arch)"
    "$ROOT/build.sh" ipk >"$TMP/ipk.log" 2>&1 || {
      tail -20 "$TMP/ipk.log" >&2
      die "footprint: build.sh ipk failed (its log's end above)"
    }
  fi
  for f in "$ROOT"/build/ipk/ugate_*.ipk; do
    [[ -f $f ]] || continue
    arch=$(basename "$f" .ipk); arch=${arch#ugate_*_}
    record footprint 1 "ipk $arch" ipk_kib "$(per_sec "$(stat -c %s "$f")" 1024)"
    # the executable inside: the .ipk is a tar.gz holding ./data.tar.gz with usr/bin/ugate
    size=$(tar -xzOf "$f" ./data.tar.gz 2>/dev/null | tar -tvzf - 2>/dev/null | awk '$NF ~ /bin\/ugate$/ {print $3}')
    [[ -z $size ]] || record footprint 1 "usr/bin/ugate $arch" binary_kib "$(per_sec "$size" 1024)"
  done
  local base=()
  [[ -z ${UGATE_BASE_BIN:-} ]] || base=(base-ugate)
  rotate footprint start_run ugate "${base[@]}" haproxy nginx-stream microsocks
}

# ---------------------------------------------------------------- run
LOAD0=$(load1)
STARTED=$(date +%s)
if awk -v l="$LOAD0" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average is $LOAD0 on $(nproc) CPUs: other work will skew the figures"
fi
log "bench: sections [$SECTIONS], $ROUNDS rounds, ${SECONDS_RUN}s runs$([[ $QUICK == 1 ]] && echo ' (BENCH_QUICK)')"
for s in $SECTIONS; do "section_$s"; done
LOAD1=$(load1)
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------- report
# chart titles and y labels, by the data files report.awk writes
declare -A CHART=(
  [bench-relay]="iperf3 through a TCP relay on loopback (bench/relay.sh)|Gbit/s"
  [bench-conn]="one HTTP request per connection through a relay|connections/s"
  [bench-conn-cpu]="relay CPU per connection|µs per connection"
  [bench-socks]="SOCKS5 bulk download (curl --socks5-hostname)|Gbit/s"
  [bench-transparent]="iperf3 captured by nftables REDIRECT (namespaces)|Gbit/s"
  [bench-udp]="iperf3 -u: kernel forwarding, ugate (TPROXY), socat, minimal relay (namespaces)|packets/s"
  [bench-memory]="RSS per idle relayed connection|bytes"
  [bench-start]="start → accepting|ms"
)
if [[ $BENCH_DOC == - ]]; then IMG=$TMP/img; else IMG=$(dirname "$BENCH_DOC")/img; fi
mkdir -p "$TMP/charts" "$IMG"
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "no commit")
ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
REPORT=$TMP/report.md
{
  echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC') — $(machine); load average $LOAD0 before, $LOAD1 after;" \
    "$((ELAPSED / 60)) min $((ELAPSED % 60)) s; ugate rev $REV$([[ $QUICK == 1 ]] && echo '; **BENCH_QUICK** (small sizes: a check of the suite, not figures)')."
  echo "Settings: sections [$SECTIONS], $ROUNDS rounds, ${SECONDS_RUN} s per timed run, $CONNS concurrent connections," \
    "$SOCKS_MIB MiB SOCKS5 download, $HOLD idle connections, $FLOWS idle UDP flows, $STARTS starts per round."
  echo "Peers: haproxy $(ver haproxy), nginx $(ver nginx-light), wrk $(ver wrk), iperf3 $(ver iperf3), dante-server $(ver dante-server)," \
    "redsocks $(ver redsocks), microsocks $(ver microsocks), curl $(ver curl)."
  echo
  awk -f "$ROOT/bench/report.awk" -v rounds="$ROUNDS" -v charts="$TMP/charts" -v img=img "$RESULTS" |
    awk -v rep="$TMP/relay/report.md" -v udp="$TMP/udp/report.md" '$0 == "@RELAY_REPORT@" { while ((getline l < rep) > 0) print l; next }
      $0 == "@UDP_REPORT@" { while ((getline l < udp) > 0) print l; next } { print }'
  if [[ -f $TMP/snirelay.out ]]; then
    printf '\n### Relay over SNI (bench/sni-relay.sh)\n\n```\n'
    cat "$TMP/snirelay.out"
    printf '```\n'
  fi
  if [[ -f $TMP/meshrelay.out ]]; then
    printf '\n### Gate to gate through a relay, by node name (bench/mesh-relay.sh)\n\n```\n'
    cat "$TMP/meshrelay.out"
    printf '```\n'
  fi
  if [[ -f $TMP/hbone/report.md ]]; then
    printf '\n### HBONE tunnels (bench/hbone.sh)\n\n'
    cat "$TMP/hbone/report.md"
  fi
} >"$REPORT"
for dat in "$TMP"/charts/*.dat; do
  [[ -f $dat ]] || continue
  name=$(basename "$dat" .dat)
  IFS='|' read -r title ylabel <<<"${CHART[$name]:-$name|}"
  gnuplot -e "set terminal pngcairo size 900,420 font 'sans,10' noenhanced; set output '$IMG/$name.png'" \
    -e "set title '$title'; set ylabel '$ylabel'; set style data histogram; set style histogram clustered gap 1" \
    -e "set style fill solid 0.8 border -1; set grid ytics; set yrange [0:*]; set key top right; set xtics rotate by -25" \
    -e "plot for [i=2:$((ROUNDS + 1))] '$dat' using i:xtic(1) title sprintf('round %d', i - 1)" 2>"$TMP/gnuplot.err" ||
    { cat "$TMP/gnuplot.err" >&2; die "gnuplot failed on $name"; }
done

echo
cat "$REPORT"
BEGIN_MARK='<!-- BEGIN make bench output (bench/run.sh; generated, edit outside these markers) -->'
END_MARK='<!-- END make bench output -->'
if [[ $BENCH_DOC != - ]]; then
  write_section "$BENCH_DOC" "$BEGIN_MARK" "$END_MARK" "$REPORT"
  log "charts in $IMG/"
fi
