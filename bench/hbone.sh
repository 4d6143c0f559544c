#!/usr/bin/env bash
# bench/hbone.sh — HBONE tunnels (HTTP/2 CONNECT over mutual TLS) vs direct (not a test).
#
# In network namespaces it creates, cli — gwa — gwb — srv (IPv4, the
# benchmark ranges), the same hops for every peer, in rotation:
#   direct       gwa and gwb only forward (no tunnel)
#   ugate-ugate  ugate in gwa captures the client's connections (nftables
#                REDIRECT, its own capture) and sends them through an `hbone`
#                upstream to ugate's `hbone` listener in gwb, which dials srv
#   ugate-node   the same ugate in gwa; in gwb the ztunnel-like server on
#                Node's http2 (test/lib/hbone.ts, via bench/hbone-load.ts)
#   base-base    with BENCH_BASE only: ugate-ugate with that other binary at
#                both ends (a build before a change, in the same run)
#   relay-copy   the yardstick (iperf3 only): no TLS, no HTTP/2; ugate in gwa
#                captures as for ugate-ugate and forwards (a `forward:` rule)
#                to a `forward` listener of ugate in gwb, which dials srv;
#                both with relay.splice false: recv/send through a 64 KiB
#                buffer. What any user-space relay pair without kTLS costs on
#                these hops; a TLS relay copies at least as much, plus AES-GCM
#   relay-splice the same pair with splice (ugate's default relay)
#   relay-tls    a third-party TLS relay pair (iperf3 only): stunnel4 (OpenSSL)
#                in gwa as TLS client, in gwb as TLS server, which dials srv;
#                TLS 1.3 only, TLS_AES_128_GCM_SHA256, mutual certificates (the
#                bench's gwa and gwb identities), each side verifying the
#                other's chain against the bench CA (stunnel cannot check a
#                URI SAN: no identity pinning). In gwa an nftables table of the
#                bench's own (prerouting, iif a1, tcp dport 5201 → REDIRECT to
#                stunnel's port) captures the client's connection as ugate's
#                capture does; it exists only while relay-tls (or relay-socat)
#                runs. What a user-space TLS relay pair with OpenSSL's AES-GCM
#                reaches here (stunnel copies through its own 18 KiB buffers)
#   relay-socat  the same with socat (OPENSSL addresses, -b 65536, a process
#                per connection): TLS 1.3 and the cipher suite from an
#                OPENSSL_CONF file of the bench's, the same certificates and
#                CA, the client also checking the server's CN; the same
#                REDIRECT in gwa
# Figures:
#   - iperf3 through one tunnel, 1 and 4 streams (BENCH_STREAMS): Gbit/s,
#     CPU s per GB of each side (utime+stime of the process, gwa and gwb)
#   - stream rate: new captured TCP connections per second, each a new
#     CONNECT stream on the warm pooled connection (connect, 1 byte there
#     and back, close; BENCH_CONC at a time), CPU µs per stream of each side
#   - handshake rate: new TLS 1.3 + HTTP/2 connections per second to the
#     gwb server (Node's http2 client in gwa with a client certificate:
#     connect, the server's SETTINGS, close; BENCH_CONC_TLS at a time), the
#     server's CPU ms per handshake
# Ratios are medians of per-round ratios (same round, same stream count).
# Targets (issue 12 §4): one tunnel ≥ 0.35 × direct on one stream, ≥ 2 × the
# Node peer. Prints one report; `make bench` (bench/run.sh) runs it as its
# hbone section.
#
# Environment:
#   BENCH_SECONDS=10  BENCH_ROUNDS=2  BENCH_STREAMS="1 4"
#   BENCH_CONC=32     connections in flight for the stream rate
#   BENCH_CONC_TLS=8  handshakes in flight for the handshake rate
#   BENCH_DOC=-       a file whose "bench/hbone.sh output" section is rewritten; "-" = none
#   UGATE_BIN=build/ugate
#   BENCH_BASE=FILE   another ugate binary to compare with (the base-base peer)
#   BENCH_OUT=DIR     also leave results.tsv and report.md there
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_STREAMS=${BENCH_STREAMS:-"1 4"}
BENCH_CONC=${BENCH_CONC:-32}
BENCH_CONC_TLS=${BENCH_CONC_TLS:-8}
BENCH_DOC=${BENCH_DOC:--}
UGATE_BIN=${UGATE_BIN:-$ROOT/build/ugate}
# log, die, need, start_bg, stop_bg, cpu_ticks, wait_listen, wait_ready_line, ...; TMP, CLEANUP
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $# -eq 0 ]] || bad_arg "$1"
for v in BENCH_SECONDS BENCH_ROUNDS BENCH_CONC BENCH_CONC_TLS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v: '${!v}' is not a positive integer"
done
for s in $BENCH_STREAMS; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "BENCH_STREAMS: bad stream count '$s'"; done
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, nftables)"
[[ -x $UGATE_BIN ]] || die "$UGATE_BIN not found: run ./build.sh first"
BENCH_BASE=${BENCH_BASE:-}
[[ -z $BENCH_BASE || -x $BENCH_BASE ]] || die "BENCH_BASE: '$BENCH_BASE' is not an executable"
[[ -x $ROOT/node_modules/.bin/esbuild ]] || die "node_modules missing: run 'npm ci'"
need iperf3 iperf3
need jq jq
need node nodejs
need nft nftables
need ip iproute2
need openssl openssl
apt_install stunnel4 socat # the relay-tls and relay-socat peers
need stunnel4 stunnel4
need socat socat

LOAD_JS=$TMP/hbone-load.mjs
"$ROOT/node_modules/.bin/esbuild" "$ROOT/bench/hbone-load.ts" --bundle --platform=node --format=esm \
  --log-level=warning --outfile="$LOAD_JS"

# ---------------------------------------------------------------- identities
# `ugate identity init` makes gwb's (and the CA); openssl signs gwa's and the handshake client's.
TD=bench.test
ID=$TMP/id
mkdir -p "$ID/b"
"$UGATE_BIN" identity init --dir "$ID/b" --trust-domain $TD --namespace bench --sa b >/dev/null
sign() { sign_identity "$ID/$1" "$ID/b" "spiffe://$TD/ns/bench/sa/$1"; }  # NAME
sign a
sign n
B_ID=spiffe://$TD/ns/bench/sa/b

# ---------------------------------------------------------------- namespaces
NS=uhb$$
CLI=198.18.21.2 A_LAN=198.18.21.1 A_MESH=198.18.22.1 B_MESH=198.18.22.2 B_LAN=198.18.23.1 SRV=198.18.23.2
ECHO=7001
for n in cli gwa gwb srv; do CLEANUP+=("ip netns del $NS-$n 2>/dev/null"); done
for n in cli gwa gwb srv; do ip netns add "$NS-$n"; nsx "$n" ip link set lo up; done
ip link add c0 netns "$NS-cli" type veth peer name a1 netns "$NS-gwa"
ip link add a2 netns "$NS-gwa" type veth peer name b1 netns "$NS-gwb"
ip link add b2 netns "$NS-gwb" type veth peer name s0 netns "$NS-srv"
nsx cli ip addr add "$CLI/24" dev c0
nsx gwa ip addr add "$A_LAN/24" dev a1
nsx gwa ip addr add "$A_MESH/24" dev a2
nsx gwb ip addr add "$B_MESH/24" dev b1
nsx gwb ip addr add "$B_LAN/24" dev b2
nsx srv ip addr add "$SRV/24" dev s0
for x in "cli c0" "gwa a1" "gwa a2" "gwb b1" "gwb b2" "srv s0"; do read -r n d <<<"$x"; nsx "$n" ip link set "$d" up; done
nsx cli ip route add default via "$A_LAN"
nsx gwa ip route add 198.18.23.0/24 via "$B_MESH"
nsx gwb ip route add 198.18.21.0/24 via "$A_MESH"
nsx srv ip route add default via "$B_LAN"
nsx gwa sysctl -qw net.ipv4.ip_forward=1
nsx gwb sysctl -qw net.ipv4.ip_forward=1

start_bg "$TMP/iperf3-srv.log" ip netns exec "$NS-srv" iperf3 -s -B "$SRV" -p 5201
SRV_PID=$BG_PID
wait_listen 5201 "$SRV_PID" "$TMP/iperf3-srv.log" netns
start_bg "$TMP/echo.log" ip netns exec "$NS-srv" node "$LOAD_JS" echo "$SRV" "$ECHO"
ECHO_PID=$BG_PID
wait_listen "$ECHO" "$ECHO_PID" "$TMP/echo.log" netns

# ---------------------------------------------------------------- peers
cat >"$TMP/a.json" <<EOF
{ "limits": { "maxConnections": 20000, "maxPerSource": 20000 },
  "relay": { "shutdownGrace": 0 },
  "dial": { "mark": 255 },
  "mesh": { "identityDir": "$ID/a", "trustDomain": "$TD" },
  "listeners": [ { "name": "cap", "type": "redirect", "listen": "0.0.0.0:15001", "allow": ["198.18.0.0/15"] } ],
  "capture": { "enabled": true, "listener": "cap", "lanInterfaces": ["a1"], "ports": [5201, $ECHO], "ipv6": false },
  "upstreams": [ { "name": "b", "type": "hbone", "server": "$B_MESH", "identity": "$B_ID" } ],
  "rules": [ { "dstCidr": ["198.18.23.0/24"], "action": "upstream:b" } ] }
EOF
cat >"$TMP/b.json" <<EOF
{ "limits": { "maxConnections": 20000, "maxPerSource": 20000 },
  "relay": { "shutdownGrace": 0 },
  "mesh": { "identityDir": "$ID/b", "trustDomain": "$TD" },
  "listeners": [ { "name": "mesh", "type": "hbone", "listen": "$B_MESH:15008", "allow": ["198.18.0.0/15"] } ] }
EOF
# The yardstick: a plain relay pair, copy or splice (relay-copy, relay-splice)
RELAY_PORT=15009
for m in copy splice; do
  sp=false; [[ $m == copy ]] || sp=true
  cat >"$TMP/ra-$m.json" <<EOF
{ "limits": { "maxConnections": 20000, "maxPerSource": 20000 },
  "relay": { "shutdownGrace": 0, "splice": $sp },
  "dial": { "mark": 255 },
  "listeners": [ { "name": "cap", "type": "redirect", "listen": "0.0.0.0:15001", "allow": ["198.18.0.0/15"] } ],
  "capture": { "enabled": true, "listener": "cap", "lanInterfaces": ["a1"], "ports": [5201], "ipv6": false },
  "rules": [ { "dstCidr": ["198.18.23.0/24"], "action": "forward:$B_MESH:$RELAY_PORT" } ] }
EOF
  cat >"$TMP/rb-$m.json" <<EOF
{ "limits": { "maxConnections": 20000, "maxPerSource": 20000 },
  "relay": { "shutdownGrace": 0, "splice": $sp },
  "listeners": [ { "name": "fwd", "type": "forward", "listen": "$B_MESH:$RELAY_PORT", "target": "$SRV:5201",
    "allow": ["198.18.0.0/15"] } ] }
EOF
done
# The TLS yardstick: stunnel4 in gwa (client) and gwb (server) (relay-tls)
TLS_PORT=15010 TLS_CAP=15011
stunnel_conf() {  # FILE SIDE(a|b) SERVICE-LINES...: TLS 1.3, AES-128-GCM, mutual certificates
  local f=$1 side=$2
  shift 2
  {
    printf 'foreground = yes\npid =\ndebug = 4\n[tls]\n'
    printf '%s\n' "$@"
    printf 'cert = %s\nkey = %s\nCAfile = %s\n' "$ID/$side/cert-chain.pem" "$ID/$side/key.pem" "$ID/$side/root-cert.pem"
    printf 'verifyChain = yes\nrequireCert = yes\nsslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n'
    printf 'ciphersuites = TLS_AES_128_GCM_SHA256\n'
  } >"$f"
}
stunnel_conf "$TMP/ta.conf" a "client = yes" "accept = 0.0.0.0:$TLS_CAP" "connect = $B_MESH:$TLS_PORT"
stunnel_conf "$TMP/tb.conf" b "accept = $B_MESH:$TLS_PORT" "connect = $SRV:5201"
# socat: TLS 1.3 only and the cipher suite through OpenSSL's configuration (socat has no option for them)
cat >"$TMP/openssl.cnf" <<'EOF'
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = sys
[sys]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF
B_CN=$(openssl x509 -in "$ID/b/cert-chain.pem" -noout -subject -nameopt sep_multiline | sed -n 's/^ *CN=//p')
TLS_NFT=''
A_PID='' B_PID=''
bin_of() { if [[ $1 == base ]]; then echo "$BENCH_BASE"; else echo "$UGATE_BIN"; fi; }  # ugate|base
start_b() {  # SERVER (ugate|base|node): the HBONE server in gwb; sets B_PID
  if [[ $1 != node ]]; then
    start_bg "$TMP/b.log" ip netns exec "$NS-gwb" "$(bin_of "$1")" run --config "$TMP/b.json"
    B_PID=$BG_PID
    wait_ready_line "$B_PID" "$TMP/b.log"
  else
    start_bg "$TMP/b.log" ip netns exec "$NS-gwb" node "$LOAD_JS" peer "$ID/b" $TD "$B_MESH" 15008
    B_PID=$BG_PID
  fi
  wait_listen 15008 "$B_PID" "$TMP/b.log" netns
}
start_relay() {  # MODE (copy|splice): the plain relay pair; sets A_PID, B_PID
  start_bg "$TMP/b.log" ip netns exec "$NS-gwb" "$UGATE_BIN" run --config "$TMP/rb-$1.json"
  B_PID=$BG_PID
  wait_ready_line "$B_PID" "$TMP/b.log"
  wait_listen $RELAY_PORT "$B_PID" "$TMP/b.log" netns
  start_bg "$TMP/a.log" ip netns exec "$NS-gwa" "$UGATE_BIN" run --config "$TMP/ra-$1.json"
  A_PID=$BG_PID
  wait_ready_line "$A_PID" "$TMP/a.log"
}
start_tls_relay() {  # TOOL (tls|socat): the TLS relay pair and gwa's REDIRECT to it; sets A_PID, B_PID
  local o=$TMP/openssl.cnf
  if [[ $1 == tls ]]; then
    start_bg "$TMP/b.log" ip netns exec "$NS-gwb" stunnel4 "$TMP/tb.conf"
  else
    start_bg "$TMP/b.log" ip netns exec "$NS-gwb" env OPENSSL_CONF="$o" socat -b 65536 \
      "OPENSSL-LISTEN:$TLS_PORT,bind=$B_MESH,reuseaddr,fork,cert=$ID/b/cert-chain.pem,key=$ID/b/key.pem,cafile=$ID/b/root-cert.pem,verify=1" \
      "TCP:$SRV:5201"
  fi
  B_PID=$BG_PID
  wait_listen $TLS_PORT "$B_PID" "$TMP/b.log" netns
  if [[ $1 == tls ]]; then
    start_bg "$TMP/a.log" ip netns exec "$NS-gwa" stunnel4 "$TMP/ta.conf"
  else
    start_bg "$TMP/a.log" ip netns exec "$NS-gwa" env OPENSSL_CONF="$o" socat -b 65536 "TCP-LISTEN:$TLS_CAP,reuseaddr,fork" \
      "OPENSSL:$B_MESH:$TLS_PORT,cert=$ID/a/cert-chain.pem,key=$ID/a/key.pem,cafile=$ID/a/root-cert.pem,verify=1,cn=$B_CN,nosni=1"
  fi
  A_PID=$BG_PID
  wait_listen $TLS_CAP "$A_PID" "$TMP/a.log" netns
  nsx gwa nft -f - <<EOF
table ip uhb_tls {
  chain pre { type nat hook prerouting priority dstnat; iifname "a1" tcp dport 5201 redirect to :$TLS_CAP; }
}
EOF
  TLS_NFT=1
}
start_peer() {  # PEER (direct|relay-tls|relay-socat|relay-MODE|A-B): A_PID, B_PID ("" when none)
  A_PID='' B_PID=''
  [[ $1 != direct ]] || return 0
  if [[ $1 == relay-tls || $1 == relay-socat ]]; then start_tls_relay "${1#relay-}"; return 0; fi
  if [[ $1 == relay-* ]]; then start_relay "${1#relay-}"; return 0; fi
  start_b "${1#*-}"
  start_bg "$TMP/a.log" ip netns exec "$NS-gwa" "$(bin_of "${1%%-*}")" run --config "$TMP/a.json"
  A_PID=$BG_PID
  wait_ready_line "$A_PID" "$TMP/a.log"
}
stop_peer() {
  [[ -z $TLS_NFT ]] || nsx gwa nft delete table ip uhb_tls
  TLS_NFT=''
  [[ -z $A_PID ]] || stop_bg "$A_PID"
  [[ -z $B_PID ]] || stop_bg "$B_PID"
  A_PID='' B_PID=''
}
ticks() { if [[ -z $1 ]]; then echo 0; else cpu_ticks "$1"; fi; }

# ---------------------------------------------------------------- runs
RESULTS=$TMP/results.tsv # round kind peer metric value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6g", (b > 0) ? a / b : 0 }'; }
cpu_per() {  # TICKS UNITS SCALE: CPU seconds × SCALE per unit
  awk -v t="$1" -v u="$2" -v k="$3" -v hz="$CLK_TCK" 'BEGIN { printf "%.6g", (u > 0) ? t / hz * k / u : 0 }'
}

iperf_run() {  # ROUND STREAMS PEER
  local r=$1 s=$2 peer=$3 json=$TMP/iperf-$1-$2-$3.json a0 b0 a1 b1 gbps bytes
  start_peer "$peer"
  a0=$(ticks "$A_PID") b0=$(ticks "$B_PID")
  timeout $((BENCH_SECONDS + 30)) ip netns exec "$NS-cli" iperf3 -c "$SRV" -p 5201 -P "$s" -t "$BENCH_SECONDS" -J >"$json" 2>&1 ||
    { cat "$json" >&2; [[ $peer == direct ]] || { show_log "$TMP/a.log"; show_log "$TMP/b.log"; }; die "iperf3 through $peer failed"; }
  a1=$(ticks "$A_PID") b1=$(ticks "$B_PID")
  stop_peer
  kill -0 "$SRV_PID" 2>/dev/null || die "the iperf3 server died"
  gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9' "$json")
  bytes=$(jq -r '.end.sum_received.bytes' "$json")
  record "$r" "P$s" "$peer" gbps "$gbps"
  if [[ $peer != direct ]]; then
    record "$r" "P$s" "$peer" a_cpu_s_gb "$(cpu_per $((a1 - a0)) "$bytes" 1e9)"
    record "$r" "P$s" "$peer" b_cpu_s_gb "$(cpu_per $((b1 - b0)) "$bytes" 1e9)"
  fi
  log "$(printf '  hbone round %s -P %s %-12s %6.2f Gbit/s' "$r" "$s" "$peer" "$gbps")"
}

streams_run() {  # ROUND PEER
  local r=$1 peer=$2 res=$TMP/conns-$1-$2.json a0 b0 a1 b1 n
  start_peer "$peer"
  # the first connection opens the pooled HTTP/2 connection: the run starts warm
  ip netns exec "$NS-cli" node "$LOAD_JS" conns "$SRV" "$ECHO" 1 0 >/dev/null
  a0=$(ticks "$A_PID") b0=$(ticks "$B_PID")
  ip netns exec "$NS-cli" node "$LOAD_JS" conns "$SRV" "$ECHO" "$BENCH_CONC" "$BENCH_SECONDS" >"$res" ||
    { cat "$res" >&2; die "stream rate through $peer failed"; }
  a1=$(ticks "$A_PID") b1=$(ticks "$B_PID")
  stop_peer
  n=$(jq -r .n "$res")
  record "$r" streams "$peer" rate "$(jq -r .rate "$res")"
  record "$r" streams "$peer" errors "$(jq -r .errors "$res")"
  record "$r" streams "$peer" p50_ms "$(jq -r .p50_ms "$res")"
  if [[ $peer != direct ]]; then
    record "$r" streams "$peer" a_cpu_us "$(cpu_per $((a1 - a0)) "$n" 1e6)"
    record "$r" streams "$peer" b_cpu_us "$(cpu_per $((b1 - b0)) "$n" 1e6)"
  fi
  log "$(printf '  hbone round %s streams %-12s %8.0f /s' "$r" "$peer" "$(jq -r .rate "$res")")"
}

handshakes_run() {  # ROUND SERVER (ugate|base|node)
  local r=$1 srv=$2 res=$TMP/tls-$1-$2.json b0 b1 n
  start_b "$srv"
  b0=$(ticks "$B_PID")
  ip netns exec "$NS-gwa" node "$LOAD_JS" handshakes "$B_MESH" 15008 "$ID/n" "$B_ID" "$BENCH_CONC_TLS" "$BENCH_SECONDS" >"$res" ||
    { cat "$res" >&2; show_log "$TMP/b.log"; die "handshakes with $srv failed"; }
  b1=$(ticks "$B_PID")
  stop_bg "$B_PID"
  B_PID=
  n=$(jq -r .n "$res")
  record "$r" handshakes "$srv" rate "$(jq -r .rate "$res")"
  record "$r" handshakes "$srv" errors "$(jq -r .errors "$res")"
  record "$r" handshakes "$srv" b_cpu_ms "$(cpu_per $((b1 - b0)) "$n" 1e3)"
  log "$(printf '  hbone round %s handshakes %-6s %8.0f /s' "$r" "$srv" "$(jq -r .rate "$res")")"
}

LOAD0=$(load1)
STARTED=$(date +%s)
if awk -v l="$LOAD0" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average is $LOAD0 on $(nproc) CPUs: other work will skew the figures"
fi
PEERS=(direct ugate-ugate ugate-node)
SERVERS=(ugate node)
if [[ -n $BENCH_BASE ]]; then PEERS+=(base-base); SERVERS+=(base); fi
IPEERS=("${PEERS[@]}" relay-copy relay-splice relay-tls relay-socat) # the relay pairs forward iperf3's port only
NP=${#PEERS[@]} NI=${#IPEERS[@]} NS_=${#SERVERS[@]}
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  for s in $BENCH_STREAMS; do
    for ((k = 0; k < NI; k++)); do iperf_run "$r" "$s" "${IPEERS[$(((k + r - 1) % NI))]}"; done
  done
  for ((k = 0; k < NP; k++)); do streams_run "$r" "${PEERS[$(((k + r - 1) % NP))]}"; done
  for ((k = 0; k < NS_; k++)); do handshakes_run "$r" "${SERVERS[$(((k + r - 1) % NS_))]}"; done
done
LOAD1=$(load1)
ELAPSED=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------- report
REPORT=$TMP/report.md
pratio() {  # KIND METRIC A B: median over the rounds of A / B (same round)
  awk -F'\t' -v k="$1" -v m="$2" -v a="$3" -v b="$4" '$2 == k && $4 == m { v[$1, $3] = $5; if ($1 > R) R = $1 }
    END { for (r = 1; r <= R; r++) if ((r, a) in v && (r, b) in v && v[r, b] > 0) x[++n] = v[r, a] / v[r, b]
      if (!n) { print ""; exit } for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
      print (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }' "$RESULTS"
}
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "") print "n/a"; else print (v >= t) ? "**PASS**" : "**MISS**" }'; }
{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC') — $(machine); load average $LOAD0 before, $LOAD1 after;" \
    "$((ELAPSED / 60)) min $((ELAPSED % 60)) s; $BENCH_ROUNDS rounds of ${BENCH_SECONDS} s per peer; ugate rev" \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); iperf3 $(iperf3 --version | awk 'NR == 1 {print $2}'), Node $(node --version)."
  [[ -z $BENCH_BASE ]] || echo "base: $BENCH_BASE ($(stat -c %s "$BENCH_BASE") bytes)."
  echo
  echo "iperf3 through one tunnel (cli → gwa → gwb → srv):"
  echo
  echo "| -P | peer | Gbit/s (median) | per round | × direct | × ugate-node | CPU s/GB gwa | CPU s/GB gwb |"
  echo "|---:|---|---:|---|---:|---:|---:|---:|"
  for s in $BENCH_STREAMS; do
    for p in "${IPEERS[@]}"; do
      echo "| $s | $p | $(fmt "$(med "P$s" "$p" gbps)" '%.2f') | $(rounds_of "P$s" "$p" gbps '%.2f')" \
        "| $(fmt "$(pratio "P$s" gbps "$p" direct)" '%.2f') | $(fmt "$(pratio "P$s" gbps "$p" ugate-node)" '%.2f')" \
        "| $(fmt "$(med "P$s" "$p" a_cpu_s_gb)" '%.2f') | $(fmt "$(med "P$s" "$p" b_cpu_s_gb)" '%.2f') |"
    done
  done
  echo
  echo "New streams on a warm tunnel (captured connections, 1 byte there and back, $BENCH_CONC at a time):"
  echo
  echo "| peer | streams/s (median) | per round | × direct | p50 ms | errors | CPU µs/stream gwa | CPU µs/stream gwb |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|"
  for p in "${PEERS[@]}"; do
    echo "| $p | $(fmt "$(med streams "$p" rate)" '%.0f') | $(rounds_of streams "$p" rate '%.0f')" \
      "| $(fmt "$(pratio streams rate "$p" direct)" '%.2f') | $(fmt "$(med streams "$p" p50_ms)" '%.2f')" \
      "| $(fmt "$(med streams "$p" errors)" '%.0f') | $(fmt "$(med streams "$p" a_cpu_us)" '%.0f') | $(fmt "$(med streams "$p" b_cpu_us)" '%.0f') |"
  done
  echo
  echo "New TLS 1.3 + HTTP/2 connections to the gwb server (Node's http2 client, $BENCH_CONC_TLS at a time):"
  echo
  echo "| server | handshakes/s (median) | per round | errors | server CPU ms/handshake |"
  echo "|---|---:|---|---:|---:|"
  for p in "${SERVERS[@]}"; do
    echo "| $p | $(fmt "$(med handshakes "$p" rate)" '%.0f') | $(rounds_of handshakes "$p" rate '%.0f')" \
      "| $(fmt "$(med handshakes "$p" errors)" '%.0f') | $(fmt "$(med handshakes "$p" b_cpu_ms)" '%.2f') |"
  done
  echo
  echo "Targets (issue 12 §4), medians of per-round ratios:"
  x=$(pratio P1 gbps ugate-ugate direct)
  echo "- $(verdict "$x" 0.35) one tunnel ≥ 0.35 × direct, one stream: $(fmt "$x" '%.2f') ×"
  for s in $BENCH_STREAMS; do
    x=$(pratio "P$s" gbps ugate-ugate ugate-node)
    echo "- $(verdict "$x" 2) ugate → ugate ≥ 2 × ugate → Node peer, -P $s: $(fmt "$x" '%.2f') ×"
  done
  echo
  echo "The yardsticks: a plain relay pair (no TLS, no HTTP/2) and TLS relay pairs of stunnel4 (relay-tls) and socat" \
    "(relay-socat; TLS 1.3, AES-128-GCM, mutual certificates, no HTTP/2) on the same hops, same rounds:"
  for s in $BENCH_STREAMS; do
    echo "- -P $s: relay-copy $(fmt "$(pratio "P$s" gbps relay-copy direct)" '%.2f') ×," \
      "relay-splice $(fmt "$(pratio "P$s" gbps relay-splice direct)" '%.2f') ×," \
      "relay-tls $(fmt "$(pratio "P$s" gbps relay-tls direct)" '%.2f') ×," \
      "relay-socat $(fmt "$(pratio "P$s" gbps relay-socat direct)" '%.2f') × direct;" \
      "ugate-ugate $(fmt "$(pratio "P$s" gbps ugate-ugate relay-copy)" '%.2f') × relay-copy," \
      "$(fmt "$(pratio "P$s" gbps ugate-ugate relay-tls)" '%.2f') × relay-tls," \
      "$(fmt "$(pratio "P$s" gbps ugate-ugate relay-socat)" '%.2f') × relay-socat"
  done
  if [[ -n $BENCH_BASE ]]; then
    echo
    for s in $BENCH_STREAMS; do
      echo "ugate-ugate ÷ base-base, -P $s: $(fmt "$(pratio "P$s" gbps ugate-ugate base-base)" '%.2f') × the Gbit/s."
    done
  fi
  echo
  echo "CPU: utime+stime of the process in gwa (ugate, stunnel or socat) and in gwb (ugate, node or the relay) per 10⁹ bytes iperf3 received,"
  echo "per stream, per handshake; client, servers and both gateways share the same CPUs."
} >"$REPORT"
echo
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$RESULTS" "$REPORT" "$BENCH_OUT/"; fi
if [[ $BENCH_DOC != - ]]; then
  write_section "$BENCH_DOC" '<!-- BEGIN bench/hbone.sh output (generated) -->' '<!-- END bench/hbone.sh output -->' "$REPORT"
fi
