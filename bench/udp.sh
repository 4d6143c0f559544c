#!/usr/bin/env bash
# bench/udp.sh — transparent UDP benchmark for ugate (not a test).
#
# In network namespaces it creates (cli — gw — srv, IPv4), iperf3 -u from
# the client to the server, all peers in the same run, in rotation:
#   kernel   the gw only forwards: the ceiling (no proxy)
#   ugate    ugate in the gw captures the client's UDP with TPROXY (its own
#            capture: `capture.udp` to a tproxy listener) and relays it
#   base     with UGATE_BASE_BIN only: the ugate peer with that other binary
#            (say main's), for a before/after in the same run
#   socat    socat's UDP relay in the gw (UDP4-LISTEN,fork → the server; the
#            client sends to the gw's address, iperf3's TCP control through
#            a second socat)
#   minimal  the yardstick of a user-space relay: bench/udp-flood.c's relay
#            mode in the gw (one flow, no TPROXY: the client sends to the
#            gw's address as to socat; a thread per direction, blocking
#            recvmmsg then one sendmmsg: 2 system calls per wake, nothing
#            else), iperf3's TCP control through socat
# at 1 400-byte and 64-byte datagrams (iperf3 -l, unlimited rate -b 0 unless BENCH_RATE):
# received Gbit/s and packets/s, loss, where datagrams were dropped (full
# receive buffers of the gw's sockets, or of the server's: RcvbufErrors), CPU
# of the relay per million packets received and per datagram it read (the
# gw's UDP InDatagrams: on a busy machine the server loses many a datagram
# the relay moved). Then BENCH_FLOWS flows held (one datagram each, from as
# many source ports): ugate's memory per idle flow (RSS with them minus the
# RSS before, over the flows ugate reports live), and one 1 400-byte run
# through ugate and through the kernel with them held. Prints a table and the
# ratios;
# `make bench` (bench/run.sh) runs it as its udp section.
# Flood mode (BENCH_FLOOD_FLOWS): the same peers in rotation with
# bench/udp-flood.c (compiled here) instead of iperf3: a sendmmsg sender of
# FLOWS flows (as many sockets, in turn) and a recvmmsg receiver that only
# counts, both cheap per datagram, so that the relay rather than the
# single-threaded iperf3 server is the limit; socat's fork gives it one
# process per flow.
#
# Environment:
#   BENCH_SECONDS=10     iperf3 duration per run
#   BENCH_ROUNDS=2       rounds; every peer runs once per round and size
#   BENCH_SIZES="1400 64" datagram sizes (iperf3 -l)
#   BENCH_RATE=0         iperf3 -b (0: unlimited); a rate the server keeps up
#                        with (say 50M) gives the relay about one datagram per
#                        wake: its cost per wake, whatever the machine's load
#   BENCH_PEERS="kernel ugate socat minimal" (and base with UGATE_BASE_BIN)
#   BENCH_FLOWS=10000    flows held for the memory figure and the held run (0 = skip)
#   BENCH_FLOOD_FLOWS="1 4" flood mode: flows per run ("" = skip the mode)
#   BENCH_DOC=-          a file whose "bench/udp.sh output" section is rewritten; "-" = none
#   UGATE_BIN=build/ugate
#   UGATE_BASE_BIN=      another ugate binary: the base peer
#   BENCH_OUT=DIR        also leave results.tsv and report.md there (bench/run.sh uses them)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_SIZES=${BENCH_SIZES:-"1400 64"}
BENCH_RATE=${BENCH_RATE:-0}
UGATE_BASE_BIN=${UGATE_BASE_BIN:-}
ALL_PEERS="kernel ugate socat minimal${UGATE_BASE_BIN:+ base}"
BENCH_PEERS=${BENCH_PEERS:-$ALL_PEERS}
BENCH_FLOWS=${BENCH_FLOWS:-10000}
BENCH_FLOOD_FLOWS=${BENCH_FLOOD_FLOWS-"1 4"}
BENCH_DOC=${BENCH_DOC:--}
UGATE_BIN=${UGATE_BIN:-$ROOT/build/ugate}
# log, die, need, start_bg, stop_bg, cpu_ticks, group_rss_kb, ...; TMP, PIDS, CLEANUP
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $# -eq 0 ]] || bad_arg "$1"

[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ $BENCH_FLOWS =~ ^[0-9]+$ ]] || die "BENCH_FLOWS must be a number"
for f in $BENCH_FLOOD_FLOWS; do if ! [[ $f =~ ^[1-9][0-9]*$ ]] || ((f > 4096)); then die "BENCH_FLOOD_FLOWS: bad flow count '$f' (1-4096)"; fi; done
[[ $BENCH_RATE =~ ^[0-9]+[KMG]?$ ]] || die "BENCH_RATE: bad rate '$BENCH_RATE' (iperf3 -b: 0, 50M, ...)"
for s in $BENCH_SIZES; do if ! [[ $s =~ ^[1-9][0-9]*$ ]] || ((s > 65507)); then die "BENCH_SIZES: bad size '$s'"; fi; done
for p in $BENCH_PEERS; do [[ " $ALL_PEERS " == *" $p "* ]] || die "BENCH_PEERS: unknown peer '$p' (known: $ALL_PEERS)"; done
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, nftables, policy routing)"
[[ -x $UGATE_BIN ]] || die "$UGATE_BIN not found: run ./build.sh first"
[[ -z $UGATE_BASE_BIN || -x $UGATE_BASE_BIN ]] || die "UGATE_BASE_BIN: $UGATE_BASE_BIN is not an executable"
need iperf3 iperf3
need socat socat
need jq jq
need node nodejs
need nft nftables
need ip iproute2
FLOOD=$TMP/udp-flood
if [[ -n $BENCH_FLOOD_FLOWS || " $BENCH_PEERS " == *" minimal "* ]]; then
  need gcc gcc
  gcc -O2 -Wall -Wextra -Werror -o "$FLOOD" "$ROOT/bench/udp-flood.c" || die "bench/udp-flood.c does not compile"
fi

# ---------------------------------------------------------------- namespaces
# cli 198.18.11.2 — gw 198.18.11.1 | 198.19.12.1 — srv 198.19.12.2 (the
# benchmark ranges: outside ugate's default bypass, unlike 10/8).
NS=uudp$$
CLI=198.18.11.2 GW_LAN=198.18.11.1 GW_WAN=198.19.12.1 SRV=198.19.12.2
netns_trio "$CLI" "$GW_LAN" "$GW_WAN" "$SRV"

start_bg "$TMP/iperf3-srv.log" ip netns exec "$NS-srv" iperf3 -s -B "$SRV" -p 5201
SRV_PID=$BG_PID
wait_listen 5201 "$SRV_PID" "$TMP/iperf3-srv.log" netns

# ---------------------------------------------------------------- peers
ADMIN=$TMP/ugate-admin.sock
ugate_udp_conf() {  # FILE: capture of the client's UDP to a tproxy listener; TCP (iperf3's control) is not captured
  cat >"$1" <<EOF
{ "log": { "level": "info" },
  "relay": { "shutdownGrace": 0 },
  "admin": { "socket": "$ADMIN" },
  "listeners": [
    { "name": "cap", "type": "redirect", "listen": "0.0.0.0:15080", "allow": ["198.18.0.0/15"] },
    { "name": "udp", "type": "tproxy", "listen": "0.0.0.0:15090", "allow": ["198.18.0.0/15"], "maxFlows": $((BENCH_FLOWS + 1000)) } ],
  "capture": { "enabled": true, "listener": "cap", "udp": true, "udpListener": "udp", "ipv6": false,
    "lanInterfaces": ["g1"], "ports": [80, 443] } }
EOF
}
PEER_PIDS=()
start_peer() {  # PEER [PORT]: sets PEER_PIDS (processes whose CPU is counted) and TARGET (host port the client sends to)
  local peer=$1 dport=${2:-5201} logf=$TMP/$1.log
  PEER_PIDS=()
  TARGET="$SRV $dport"
  case $peer in
    kernel) ;;
    ugate | base)
      local bin=$UGATE_BIN
      [[ $peer == ugate ]] || bin=$UGATE_BASE_BIN
      ugate_udp_conf "$TMP/ugate.json"
      start_bg "$logf" ip netns exec "$NS-gw" "$bin" run --config "$TMP/ugate.json"
      PEER_PIDS=("$BG_PID")
      wait_ready_line "$BG_PID" "$logf" ;;
    socat)
      start_bg "$TMP/socat-udp.log" ip netns exec "$NS-gw" socat -b 65536 UDP4-LISTEN:5301,bind="$GW_LAN",reuseaddr,fork "UDP4:$SRV:$dport"
      PEER_PIDS=("$BG_PID")
      start_bg "$TMP/socat-tcp.log" ip netns exec "$NS-gw" socat TCP4-LISTEN:5301,bind="$GW_LAN",reuseaddr,fork "TCP4:$SRV:5201"
      PEER_PIDS+=("$BG_PID")
      wait_listen 5301 "$BG_PID" "$TMP/socat-tcp.log" netns
      TARGET="$GW_LAN 5301" ;;
    minimal)
      start_bg "$logf" ip netns exec "$NS-gw" "$FLOOD" relay "$GW_LAN" 5301 "$SRV" "$dport"
      PEER_PIDS=("$BG_PID")
      wait_held "$BG_PID" "$logf" 10 "minimal relay"
      start_bg "$TMP/socat-tcp.log" ip netns exec "$NS-gw" socat TCP4-LISTEN:5301,bind="$GW_LAN",reuseaddr,fork "TCP4:$SRV:5201"
      PEER_PIDS+=("$BG_PID")
      wait_listen 5301 "$BG_PID" "$TMP/socat-tcp.log" netns
      TARGET="$GW_LAN 5301" ;;
  esac
}
stop_peer() { local p; for p in "${PEER_PIDS[@]}"; do stop_bg "$p"; done; PEER_PIDS=(); }

# ---------------------------------------------------------------- runs
RESULTS=$TMP/results.tsv # round size peer metric value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6g", (b > 0) ? a / b : 0 }'; }
# UDP counters of a namespace's /proc/net/snmp: InDatagrams (what its sockets
# handed to their reader: what a relay read, also those the server then lost
# for want of CPU on a busy machine) and RcvbufErrors (datagrams dropped at a
# full socket receive buffer: where the loss is).
# shellcheck disable=SC2016  # awk's fields
udp_snmp() { ip netns exec "$NS-$1" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $2, $6 }' /proc/net/snmp; }

# iperf3 -u through the running peer (start_peer); KEY is the results' size
# column (the size, or "held" for the run with BENCH_FLOWS flows held).
iperf_run() {  # ROUND SIZE PEER KEY
  local r=$1 size=$2 peer=$3 key=$4 json=$TMP/iperf-$1-$4-$3.json c0=0 c1=0 host port
  read -r host port <<<"$TARGET"
  ((${#PEER_PIDS[@]} == 0)) || c0=$(cpu_ticks "${PEER_PIDS[@]}")
  local g0 g1 gd0 gd1 sd0 sd1
  read -r g0 gd0 <<<"$(udp_snmp gw)"
  read -r _ sd0 <<<"$(udp_snmp srv)"
  timeout $((BENCH_SECONDS + 30)) ip netns exec "$NS-cli" \
    iperf3 -c "$host" -p "$port" -u -b "$BENCH_RATE" -l "$size" -t "$BENCH_SECONDS" -J >"$json" 2>&1 ||
    { cat "$json" >&2; [[ ! -f $TMP/$peer.log ]] || show_log "$TMP/$peer.log"; die "iperf3 -u through $peer failed"; }
  ((${#PEER_PIDS[@]} == 0)) || c1=$(cpu_ticks "${PEER_PIDS[@]}")
  read -r g1 gd1 <<<"$(udp_snmp gw)"
  read -r _ sd1 <<<"$(udp_snmp srv)"
  kill -0 "$SRV_PID" 2>/dev/null || die "the iperf3 server died"
  # end.sum: the server's view of the stream (packets sent, lost); received = packets - lost
  local secs pk lost lpct rx gbps
  secs=$(jq -r '.end.sum.seconds' "$json")
  pk=$(jq -r '.end.sum.packets' "$json")
  lost=$(jq -r '.end.sum.lost_packets' "$json")
  lpct=$(jq -r '.end.sum.lost_percent' "$json")
  rx=$((pk - lost))
  gbps=$(awk -v n="$rx" -v s="$size" -v t="$secs" 'BEGIN { printf "%.4g", n * s * 8 / t / 1e9 }')
  record "$r" "$key" "$peer" pps "$(per "$rx" "$secs")"
  record "$r" "$key" "$peer" gbps "$gbps"
  record "$r" "$key" "$peer" loss_pct "$lpct"
  # Where the datagrams were lost, in % of those sent: a full receive buffer in the gw (the relay's) or at the server.
  record "$r" "$key" "$peer" gw_drop_pct "$(per "$((100 * (gd1 - gd0)))" "$pk")"
  record "$r" "$key" "$peer" srv_drop_pct "$(per "$((100 * (sd1 - sd0)))" "$pk")"
  [[ $peer == kernel ]] || record "$r" "$key" "$peer" cpu_s_mpk "$(per "$(per "$((c1 - c0))" "$CLK_TCK")" "$(per "$rx" 1000000)")"
  [[ $peer == kernel ]] || record "$r" "$key" "$peer" cpu_us_read "$(per "$(per "$((c1 - c0))" "$CLK_TCK")" "$(per "$((g1 - g0))" 1000000)")"
  local tag=
  [[ $key != held ]] || tag=" ($BENCH_FLOWS flows held)"
  log "$(printf '  udp round %s %5s B %-7s %9.0f pkt/s %6.3f Gbit/s loss %5.1f%%%s' "$r" "$size" "$peer" "$(per "$rx" "$secs")" "$gbps" "$lpct" "$tag")"
}

run_one() {  # ROUND SIZE PEER
  start_peer "$3"
  iperf_run "$1" "$2" "$3" "$2"
  stop_peer
}

# Flood mode: udp-flood's receiver in srv (port 5202), its sender in cli
# through the running peer for BENCH_SECONDS; the receiver stops 1 s after
# the last datagram. packets/s: received over first to last datagram; loss:
# of those sent.
flood_run() {  # ROUND SIZE PEER FLOWS
  local r=$1 size=$2 peer=$3 flows=$4 key="f$4:$2" fo=$TMP/flood-$1-$2-$3-$4 c0=0 c1=0 host port rpid
  start_peer "$peer" 5202
  read -r host port <<<"$TARGET"
  start_bg "$fo.recv" ip netns exec "$NS-srv" "$FLOOD" recv "$SRV" 5202
  rpid=$BG_PID
  wait_held "$rpid" "$fo.recv" 10 "udp-flood receiver"
  local g0 g1 gd0 gd1 sd0 sd1
  ((${#PEER_PIDS[@]} == 0)) || c0=$(cpu_ticks "${PEER_PIDS[@]}")
  read -r g0 gd0 <<<"$(udp_snmp gw)"
  read -r _ sd0 <<<"$(udp_snmp srv)"
  timeout $((BENCH_SECONDS + 30)) ip netns exec "$NS-cli" "$FLOOD" send "$host" "$port" "$size" "$BENCH_SECONDS" "$flows" >"$fo.send" 2>&1 ||
    { cat "$fo.send" >&2; die "udp-flood through $peer failed"; }
  wait "$rpid" || { cat "$fo.recv" >&2; die "the udp-flood receiver failed"; }
  forget_pid "$rpid"
  ((${#PEER_PIDS[@]} == 0)) || c1=$(cpu_ticks "${PEER_PIDS[@]}")
  read -r g1 gd1 <<<"$(udp_snmp gw)"
  read -r _ sd1 <<<"$(udp_snmp srv)"
  stop_peer
  local sent rx secs
  sent=$(awk '$1 == "sent" {print $2}' "$fo.send")
  read -r rx secs <<<"$(awk '$1 == "received" {print $2, $6}' "$fo.recv")"
  record "$r" "$key" "$peer" pps "$(per "$rx" "$secs")"
  record "$r" "$key" "$peer" sent_pps "$(per "$sent" "$BENCH_SECONDS")"
  record "$r" "$key" "$peer" gbps "$(awk -v n="$rx" -v s="$size" -v t="$secs" 'BEGIN { printf "%.4g", (t > 0) ? n * s * 8 / t / 1e9 : 0 }')"
  record "$r" "$key" "$peer" loss_pct "$(per "$((100 * (sent - rx)))" "$sent")"
  record "$r" "$key" "$peer" gw_drop_pct "$(per "$((100 * (gd1 - gd0)))" "$sent")"
  record "$r" "$key" "$peer" srv_drop_pct "$(per "$((100 * (sd1 - sd0)))" "$sent")"
  [[ $peer == kernel ]] || record "$r" "$key" "$peer" cpu_s_mpk "$(per "$(per "$((c1 - c0))" "$CLK_TCK")" "$(per "$rx" 1000000)")"
  [[ $peer == kernel ]] || record "$r" "$key" "$peer" cpu_us_read "$(per "$(per "$((c1 - c0))" "$CLK_TCK")" "$(per "$((g1 - g0))" 1000000)")"
  log "$(printf '  udp flood round %s %5s B %2s flows %-7s %9.0f pkt/s (sent %9.0f/s) loss %5.1f%%' "$r" "$size" "$flows" "$peer" "$(per "$rx" "$secs")" "$(per "$sent" "$BENCH_SECONDS")" "$(per "$((100 * (sent - rx)))" "$sent")")"
}

# Flows held: BENCH_FLOWS client sockets send one datagram each (paced: 20
# every 2 ms), then each one more (a flow whose first datagram was dropped
# while too many waited for their route opens then), to a UDP sink in the
# server namespace. Then, with them held, ugate's RSS and live flow count
# (memory per flow), and one iperf3 run at 1 400 B through ugate and through
# the kernel (its conntrack holds as many entries).
FLOWS_JS='
const dgram = require("node:dgram")
const [to, port, n] = [process.argv[1], +process.argv[2], +process.argv[3]]
const socks = []
let i = 0
// A second pass sends again from every socket: a flow whose first datagram
// was dropped (busy) opens then; the others just get one more datagram.
const again = () => {
  for (let k = 0; k < 20 && i < 2 * n; k++, i++) socks[i - n].send(Buffer.alloc(32), port, to)
  if (i < 2 * n) setTimeout(again, 2)
  else setTimeout(() => { console.log("held " + socks.length); process.stdin.resume() }, 500)
}
const next = () => {
  for (let k = 0; k < 20 && i < n; k++, i++) {
    const s = dgram.createSocket("udp4")
    socks.push(s)
    s.bind(0, () => s.send(Buffer.alloc(32), port, to))
  }
  setTimeout(i < n ? next : again, 2)
}
process.stdin.on("end", () => process.exit(0))
next()
'
HOLDER_PID=
hold_flows() {  # start the holder of BENCH_FLOWS flows and wait until they are held
  local fifo=$TMP/flows.fifo holder=$TMP/flows.out
  rm -f "$fifo" "$holder"; mkfifo "$fifo"
  # shellcheck disable=SC2016  # expanded by the inner bash
  start_bg "$holder" bash -c 'ulimit -n $(( $4 + 1000 )); exec ip netns exec "$1" node -e "$2" "$3" 9999 "$4" <"$5"' \
    flows "$NS-cli" "$FLOWS_JS" "$SRV" "$BENCH_FLOWS" "$fifo"
  HOLDER_PID=$BG_PID
  exec 9>"$fifo"
  wait_held "$HOLDER_PID" "$holder" 120 "udp: $BENCH_FLOWS flows"
}
release_flows() { exec 9>&-; stop_bg "$HOLDER_PID"; }

flows_run() {  # PEER (ugate, base or kernel)
  local peer=$1 idle held live st busy peak
  start_peer "$peer"
  if [[ $peer == kernel ]]; then
    hold_flows
    iperf_run 1 1400 kernel held
    release_flows
    return
  fi
  idle=$(group_rss_kb "${PEER_PIDS[0]}")
  hold_flows
  st=$(ip netns exec "$NS-gw" "$UGATE_BIN" ctl --json --socket "$ADMIN" status)
  live=$(jq -r '.udp.flowsLive' <<<"$st")
  busy=$(jq -r '.udp.drops.busy' <<<"$st")
  peak=$(jq -r '.udp.flowsPendingPeak // "–"' <<<"$st") # "–": a base binary without the counter
  held=$(group_rss_kb "${PEER_PIDS[0]}")
  iperf_run 1 1400 "$peer" held
  release_flows
  stop_peer
  record 1 idle "$peer" flows_live "$live"
  record 1 idle "$peer" busy "$busy"
  record 1 idle "$peer" pending_peak "$peak"
  record 1 idle "$peer" idle_kb "$idle"
  record 1 idle "$peer" flow_bytes "$(((held - idle) * 1024 / (live > 0 ? live : 1)))"
  log "  udp memory ($peer): $live flows live of $BENCH_FLOWS sent ($busy first datagrams dropped while too many flows waited for their route, at most $peak waited at once), RSS $idle → $held kB: $(((held - idle) * 1024 / (live > 0 ? live : 1))) B per flow"
}

LOAD0=$(load1)
STARTED=$(date +%s)
read -ra peers <<<"$BENCH_PEERS"
n=${#peers[@]}
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  for size in $BENCH_SIZES; do
    for ((k = 0; k < n; k++)); do run_one "$r" "$size" "${peers[$(((k + r - 1) % n))]}"; done
    for f in $BENCH_FLOOD_FLOWS; do
      for ((k = 0; k < n; k++)); do flood_run "$r" "$size" "${peers[$(((k + r - 1) % n))]}" "$f"; done
    done
  done
done
if ((BENCH_FLOWS > 0)) && [[ " $BENCH_PEERS " == *" ugate "* ]]; then
  start_bg "$TMP/sink.log" ip netns exec "$NS-srv" socat -u UDP4-RECV:9999,bind="$SRV" /dev/null
  sink=$BG_PID
  # base (UGATE_BASE_BIN) too: the burst of new flows before/after in one run.
  for p in ugate base kernel; do if [[ $p == kernel || " $BENCH_PEERS " == *" $p "* ]]; then flows_run "$p"; fi; done
  stop_bg "$sink"
fi
LOAD1=$(load1)
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------- report
REPORT=$TMP/report.md
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f", a / b }'; }
{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC') — $(machine); load average $LOAD0 before, $LOAD1 after;" \
    "$((ELAPSED / 60)) min $((ELAPSED % 60)) s; $BENCH_ROUNDS rounds of ${BENCH_SECONDS} s per peer and size;" \
    "iperf3 $(iperf3 --version | awk 'NR == 1 {print $2}'), socat $(socat -V 2>/dev/null | awk '/socat version/ {print $3; exit}')."
  [[ -z $UGATE_BASE_BIN ]] || echo "base: $UGATE_BASE_BIN ($(stat -c %s "$UGATE_BASE_BIN") bytes)."
  echo
  echo "| size | peer | packets/s (median) | per round | Gbit/s | loss % | dropped at gw sockets % | dropped at server socket % | CPU s per 10⁶ packets | CPU µs per datagram read | × kernel pkt/s | × socat pkt/s |"
  echo "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  row() {  # KEY PEER
    local pps
    pps=$(med "$1" "$2" pps)
    echo "| $1 | $2 | $(fmt "$pps" '%.0f') | $(rounds_of "$1" "$2" pps '%.0f') | $(fmt "$(med "$1" "$2" gbps)" '%.3f')" \
      "| $(fmt "$(med "$1" "$2" loss_pct)" '%.1f') | $(fmt "$(med "$1" "$2" gw_drop_pct)" '%.1f') | $(fmt "$(med "$1" "$2" srv_drop_pct)" '%.1f')" \
      "| $(fmt "$(med "$1" "$2" cpu_s_mpk)" '%.2f') | $(fmt "$(med "$1" "$2" cpu_us_read)" '%.2f')" \
      "| $(ratio "$pps" "$(med "$1" kernel pps)") | $(ratio "$pps" "$(med "$1" socat pps)") |"
  }
  for size in $BENCH_SIZES; do for p in $BENCH_PEERS; do row "$size" "$p"; done; done
  echo
  if ((BENCH_FLOWS > 0)) && [[ " $BENCH_PEERS " == *" ugate "* ]]; then
    echo "With $BENCH_FLOWS flows held (1 400 B, one run each; the kernel's conntrack holds as many entries):"
    echo
    echo "| size | peer | packets/s | run | Gbit/s | loss % | dropped at gw sockets % | dropped at server socket % | CPU s per 10⁶ packets | CPU µs per datagram read | × kernel pkt/s | × socat pkt/s |"
    echo "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    row held ugate
    [[ " $BENCH_PEERS " != *" base "* ]] || row held base
    row held kernel
    echo
    for p in ugate base; do
      [[ " $BENCH_PEERS " == *" $p "* ]] || continue
      echo "Idle flows ($p): $(med idle "$p" flows_live) live of $BENCH_FLOWS sent ($(med idle "$p" busy) first datagrams dropped as \`busy\`:" \
        "too many new flows waited for their route; at most $(med idle "$p" pending_peak) waited at once); RSS $(fmt "$(med idle "$p" idle_kb)" '%.0f') kB" \
        "before them; **$(med idle "$p" flow_bytes) bytes of RSS per idle flow** (user space: the kernel's socket memory is not in it)."
    done
    echo
  fi
  if [[ -n $BENCH_FLOOD_FLOWS ]]; then
    echo "Flood mode (bench/udp-flood.c: sendmmsg sender of FLOWS flows, recvmmsg receiver that only counts; ${BENCH_SECONDS} s per run):"
    echo
    echo "| size | flows | peer | packets/s received (median) | per round | offered packets/s | Gbit/s | loss % | dropped at gw sockets % | dropped at receiver socket % | CPU s per 10⁶ packets | CPU µs per datagram read | × kernel pkt/s | × socat pkt/s |"
    echo "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for size in $BENCH_SIZES; do
      for f in $BENCH_FLOOD_FLOWS; do
        for p in $BENCH_PEERS; do
          key="f$f:$size" pps=$(med "f$f:$size" "$p" pps)
          echo "| $size | $f | $p | $(fmt "$pps" '%.0f') | $(rounds_of "$key" "$p" pps '%.0f') | $(fmt "$(med "$key" "$p" sent_pps)" '%.0f')" \
            "| $(fmt "$(med "$key" "$p" gbps)" '%.3f') | $(fmt "$(med "$key" "$p" loss_pct)" '%.1f') | $(fmt "$(med "$key" "$p" gw_drop_pct)" '%.1f')" \
            "| $(fmt "$(med "$key" "$p" srv_drop_pct)" '%.1f') | $(fmt "$(med "$key" "$p" cpu_s_mpk)" '%.2f') | $(fmt "$(med "$key" "$p" cpu_us_read)" '%.2f')" \
            "| $(ratio "$pps" "$(med "$key" kernel pps)") | $(ratio "$pps" "$(med "$key" socat pps)") |"
        done
      done
    done
    echo
  fi
  echo "Targets (issue 11 §5), medians of this run:"
  for size in $BENCH_SIZES; do
    k=$(ratio "$(med "$size" ugate pps)" "$(med "$size" kernel pps)")
    s=$(ratio "$(med "$size" ugate pps)" "$(med "$size" socat pps)")
    echo "- $size B: ugate packets/s = $k × kernel forwarding (target ≥ 0.5), $s × socat (target ≥ 3)"
    for f in $BENCH_FLOOD_FLOWS; do
      echo "  flood, $f flow(s): ugate packets/s = $(ratio "$(med "f$f:$size" ugate pps)" "$(med "f$f:$size" kernel pps)") × kernel forwarding," \
        "$(ratio "$(med "f$f:$size" ugate pps)" "$(med "f$f:$size" socat pps)") × socat"
    done
    [[ " $BENCH_PEERS " != *" minimal "* ]] || echo "  minimal relay (yardstick): $(ratio "$(med "$size" minimal pps)" "$(med "$size" kernel pps)") × kernel forwarding," \
      "$(ratio "$(med "$size" minimal pps)" "$(med "$size" socat pps)") × socat; ugate ÷ minimal: $(ratio "$(med "$size" ugate pps)" "$(med "$size" minimal pps)") × the packets/s," \
      "$(ratio "$(med "$size" ugate cpu_us_read)" "$(med "$size" minimal cpu_us_read)") × the CPU per datagram read"
    [[ " $BENCH_PEERS " != *" base "* ]] || echo "  ugate ÷ base: $(ratio "$(med "$size" ugate pps)" "$(med "$size" base pps)") × the packets/s," \
      "$(ratio "$(med "$size" ugate cpu_us_read)" "$(med "$size" base cpu_us_read)") × the CPU per datagram read"
  done
  ((BENCH_FLOWS == 0)) || echo "- memory per idle flow: $(med idle ugate flow_bytes) B (target ≤ 1 KB);" \
    "with $BENCH_FLOWS flows held ugate's packets/s = $(ratio "$(med held ugate pps)" "$(med held kernel pps)") × the kernel's," \
    "$(ratio "$(med held ugate pps)" "$(med 1400 ugate pps)") × its own without them"
} >"$REPORT"
echo
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$RESULTS" "$REPORT" "$BENCH_OUT/"; fi
if [[ $BENCH_DOC != - ]]; then
  write_section "$BENCH_DOC" '<!-- BEGIN bench/udp.sh output (generated) -->' '<!-- END bench/udp.sh output -->' "$REPORT"
fi
