#!/usr/bin/env bash
# bench/mesh-relay.sh — gate B to gate A through a relay (not a test), on 127.0.0.1.
#
# Issue 13 §5. Three ugate processes with identities made here (`ugate
# identity init` for the relay and CA; openssl signs A's and B's): the relay
# (the VPS: an hbone listener taking A's reverse tunnel and routing node
# names, park + sni listeners), gate A (reverse tunnel and parked connections
# to the relay; its own name and the SNI name reach the servers) and gate B
# (a SOCKS5 listener, the relay as an hbone upstream with `relay`). Each
# round, every path, the start moving each round:
#   direct       client → server
#   mesh-relay   client → B (SOCKS5, <A-id>.home.bench.test:PORT) ══ double HBONE
#                through the relay (outer stream B → relay → A's reverse
#                tunnel; TLS + HTTP/2 B ↔ A inside) ══ A → server
#   sni-relay    client → relay (sni listener, paired) → A's parked connection → A → server
#   limit_relay  client → limit_relay → server (the plain splice relay yardstick)
# Throughput: iperf3 (one stream, BENCH_SECONDS) through a socat front
# (SOCKS4A to B's name for mesh-relay, plain TCP for direct and limit_relay;
# iperf3 does not open with a TLS ClientHello, so not over sni-relay), and
# bench/sni-load.mjs bulk on every path (one connection, a ClientHello then
# bytes; SOCKS5 to B for mesh-relay). CPU per GB: utime+stime of the relay
# process (ugate's, or limit_relay) over the bytes received, and of gates A
# and B. Setup time: BENCH_SETUPS sequential connections, connect → the
# server's first byte (SOCKS5 to B included; the pooled connections are warm).
# Prints one table, ratios to direct and to limit_relay, and the load average.
#
# Environment:
#   BENCH_SECONDS=5   BENCH_ROUNDS=2   BENCH_SETUPS=200
#   UGATE_BIN=build/ugate
#   LIMIT_RELAY_SRC=../shared/bench/limit_relay.c (left out if absent)
#   BENCH_OUT=DIR     also leave results.tsv there
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $# -eq 0 ]] || bad_arg "$1"
relay_bench_settings
need iperf3 iperf3
need socat socat
need jq jq
LOAD=$ROOT/bench/sni-load.mjs
TD=bench.test
NAME=app.$TD

# ---------------------------------------------------------------- identities
ID=$TMP/id
mkdir -p "$ID/vps"
"$UGATE_BIN" identity init --dir "$ID/vps" --trust-domain $TD --namespace vps --sa relay >/dev/null
sign_identity "$ID/a" "$ID/vps" "spiffe://$TD/ns/home/sa/a"
sign_identity "$ID/b" "$ID/vps" "spiffe://$TD/ns/home/sa/b"
NODE_A=$("$UGATE_BIN" identity show --dir "$ID/a" | awk '/node id:/ {print tolower($3)}')
[[ $NODE_A =~ ^[a-z2-7]{52}$ ]] || die "no node id for gate A"
NAME_A=$NODE_A.home.$TD

# ---------------------------------------------------------------- processes
for p in SINK IPERF HB PARK SNI B_SOCKS LIM F_DIRECT F_MESH F_LIM; do free_port "$p"; done
start_bg "$TMP/sink.log" node "$LOAD" sink "$SINK"
wait_listen "$SINK" "$BG_PID" "$TMP/sink.log"
start_bg "$TMP/iperf3.log" iperf3 -s -B 127.0.0.1 -p "$IPERF"; IPERF_PID=$BG_PID
wait_listen "$IPERF" "$IPERF_PID" "$TMP/iperf3.log"
limits='"limits":{"maxConnections":0,"maxPerSource":0},"relay":{"shutdownGrace":0},"log":{"level":"warn"}'
cat >"$TMP/vps.json" <<JSON
{$limits,"mesh":{"identityDir":"$ID/vps","trustDomain":"$TD"},
 "listeners":[{"name":"mesh","type":"hbone","listen":"127.0.0.1:$HB","allow":["127.0.0.0/8"],"reverse":["spiffe://$TD/ns/home/sa/a"]},
              {"name":"park","type":"park","listen":"127.0.0.1:$PARK","grants":{"spiffe://$TD/ns/home/sa/a":["$NAME"]}},
              {"name":"tls","type":"sni","listen":"127.0.0.1:$SNI","pair":"park"}],
 "rules":[{"listener":["mesh"],"action":"mesh"}]}
JSON
cat >"$TMP/a.json" <<JSON
{$limits,"mesh":{"identityDir":"$ID/a","trustDomain":"$TD"},
 "listeners":[{"name":"local","type":"mixed","listen":"127.0.0.1:0"}],
 "reverse":[{"name":"vps","relay":"127.0.0.1:$HB","relayId":"spiffe://$TD/ns/vps/sa/relay"}],
 "sniRelay":[{"name":"park","relay":"127.0.0.1:$PARK","names":["$NAME"],"pool":4}],
 "rules":[{"listener":["vps"],"domain":["$NAME_A"],"action":"direct"},
          {"listener":["park"],"domain":["$NAME"],"action":"forward:127.0.0.1:$SINK"}]}
JSON
cat >"$TMP/b.json" <<JSON
{$limits,"mesh":{"identityDir":"$ID/b","trustDomain":"$TD"},
 "listeners":[{"name":"lan","type":"mixed","listen":"127.0.0.1:$B_SOCKS"}],
 "upstreams":[{"name":"vps","type":"hbone","server":"127.0.0.1:$HB","identity":"spiffe://$TD/ns/vps/sa/relay","relay":true}],
 "rules":[{"listener":["lan"],"domainSuffix":["$TD"],"action":"mesh"}]}
JSON
start_bg "$TMP/vps.log" "$UGATE_BIN" run --config "$TMP/vps.json"; VPS=$BG_PID
wait_listen "$SNI" "$VPS" "$TMP/vps.log"
start_bg "$TMP/a.log" "$UGATE_BIN" run --config "$TMP/a.json"; GA=$BG_PID
start_bg "$TMP/b.log" "$UGATE_BIN" run --config "$TMP/b.json"; GB=$BG_PID
wait_listen "$B_SOCKS" "$GB" "$TMP/b.log"
# A's reverse tunnel and its 4 parked connections: 5 established to the relay's ports
for _ in $(seq 100); do
  [[ $(ss -Htn state established "( dport = :$PARK or dport = :$HB )" | wc -l) -ge 5 ]] && break
  sleep 0.05
done
# The first stream through B opens the pooled connections (B → relay, B ↔ A inside): warm from here.
node "$LOAD" setup "$SINK" "$NAME_A" 1 "$B_SOCKS" >"$TMP/warm.json" || { show_log "$TMP/b.log"; die "no stream through the relay"; }
LIMIT=
if [[ -f $LIMIT_RELAY_SRC ]]; then
  gcc -O2 -o "$TMP/limit_relay" "$LIMIT_RELAY_SRC"
  start_bg "$TMP/limit.log" "$TMP/limit_relay" "$LIM" "$SINK"; LIMIT=$BG_PID
  wait_listen "$LIM" "$LIMIT" "$TMP/limit.log"
  start_bg "$TMP/limit-iperf.log" "$TMP/limit_relay" "$F_LIM" "$IPERF"; LIMIT_I=$BG_PID
  wait_listen "$F_LIM" "$LIMIT_I" "$TMP/limit-iperf.log"
else
  log "no $LIMIT_RELAY_SRC: limit_relay left out"
fi
# iperf3's socat fronts (the same extra hop on every path; the limit_relay one is limit_relay itself + socat)
start_bg "$TMP/f-direct.log" socat "TCP-LISTEN:$F_DIRECT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$IPERF"
wait_listen "$F_DIRECT" "$BG_PID" "$TMP/f-direct.log"
start_bg "$TMP/f-mesh.log" socat "TCP-LISTEN:$F_MESH,bind=127.0.0.1,reuseaddr,fork" \
  "SOCKS4A:127.0.0.1:$NAME_A:$IPERF,socksport=$B_SOCKS"
wait_listen "$F_MESH" "$BG_PID" "$TMP/f-mesh.log"
if [[ -n $LIMIT ]]; then
  free_port F_LIM2
  start_bg "$TMP/f-lim.log" socat "TCP-LISTEN:$F_LIM2,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$F_LIM"
  wait_listen "$F_LIM2" "$BG_PID" "$TMP/f-lim.log"
fi

# ---------------------------------------------------------------- runs
RES=${BENCH_OUT:-$TMP}/results.tsv   # round path metric value
: >"$RES"
rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RES"; }
per_gb() { awk -v c="$1" -v t="$CLK_TCK" -v b="$2" 'BEGIN { printf "%.4g", (b > 0) ? (c / t) / (b / 1e9) : 0 }'; }
ticks() { if [[ -z $1 ]]; then echo 0; else cpu_ticks "$1"; fi; }
# One untimed bulk run first (fresh processes, Node warming up): in trial runs the first timed
# run was the slowest of its path.
node "$LOAD" bulk "$SINK" "$NAME" 1 >/dev/null
LOAD0=$(load1)
PATHS=(direct mesh-relay sni-relay)
[[ -z $LIMIT ]] || PATHS+=(limit_relay)
NP=${#PATHS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((k = 0; k < NP; k++)); do
    p=${PATHS[$(((k + r - 1) % NP))]}
    socks=() relay='' ends=''
    case $p in
      direct) port=$SINK front=$F_DIRECT ;;
      mesh-relay) port=$SINK front=$F_MESH socks=("$B_SOCKS") relay=$VPS ends=mesh ;;
      sni-relay) port=$SNI front='' relay=$VPS ends=sni ;;
      limit_relay) port=$LIM front=${F_LIM2:-} relay=$LIMIT ;;
    esac
    # bulk: one connection, a ClientHello then bytes
    c0=$(ticks "$relay") a0=$(ticks "${ends:+$GA}") b0=$(ticks "${ends:+$GB}")
    j=$(node "$LOAD" bulk "$port" "$([[ $p == mesh-relay ]] && echo "$NAME_A" || echo "$NAME")" "$SECS" "${socks[@]}")
    c1=$(ticks "$relay") a1=$(ticks "${ends:+$GA}") b1=$(ticks "${ends:+$GB}")
    [[ $(jq -r '.error // empty' <<<"$j") == "" ]] || die "bulk through $p: $j"
    bytes=$(jq -r .bytes <<<"$j")
    rec "$r" "$p" bulk_gbps "$(jq -r .gbps <<<"$j")"
    [[ -z $relay ]] || rec "$r" "$p" relay_cpu_s_gb "$(per_gb $((c1 - c0)) "$bytes")"
    [[ -z $ends ]] || rec "$r" "$p" a_cpu_s_gb "$(per_gb $((a1 - a0)) "$bytes")"
    [[ $ends != mesh ]] || rec "$r" "$p" b_cpu_s_gb "$(per_gb $((b1 - b0)) "$bytes")"
    # iperf3, one stream, through its socat front
    if [[ -n $front ]]; then
      c0=$(ticks "$relay")
      [[ $p != limit_relay ]] || c0=$(ticks "$LIMIT_I")
      timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "$front" -t "$SECS" -J >"$TMP/iperf.json" 2>&1 ||
        { cat "$TMP/iperf.json" >&2; die "iperf3 through $p failed"; }
      if [[ $p == limit_relay ]]; then c1=$(ticks "$LIMIT_I"); else c1=$(ticks "$relay"); fi
      bytes=$(jq -r '.end.sum_received.bytes' "$TMP/iperf.json")
      rec "$r" "$p" iperf_gbps "$(jq -r '.end.sum_received.bits_per_second / 1e9' "$TMP/iperf.json")"
      [[ -z $relay ]] || rec "$r" "$p" iperf_relay_cpu_s_gb "$(per_gb $((c1 - c0)) "$bytes")"
    fi
    s=$(node "$LOAD" setup "$port" "$([[ $p == mesh-relay ]] && echo "$NAME_A" || echo "$NAME")" "$SETUPS" "${socks[@]}")
    rec "$r" "$p" setup_p50_ms "$(jq -r '.p50 | . * 1000 | round / 1000' <<<"$s")"
    rec "$r" "$p" setup_p90_ms "$(jq -r '.p90 | . * 1000 | round / 1000' <<<"$s")"
    log "  meshrelay round $r $p done"
  done
done
LOAD1=$(load1)

# ---------------------------------------------------------------- report
RESULTS=$TMP/rows.tsv # lib.sh's med/rounds_of: round key peer metric value
awk -F'\t' -v OFS='\t' '{ print $1, "all", $2, $3, $4 }' "$RES" >"$RESULTS"
ratio() {  # METRIC A B: median over the rounds of A / B (same round)
  awk -F'\t' -v m="$1" -v a="$2" -v b="$3" '$4 == m { v[$1, $3] = $5; if ($1 > R) R = $1 }
    END { for (r = 1; r <= R; r++) if ((r, a) in v && (r, b) in v && v[r, b] > 0) x[++n] = v[r, a] / v[r, b]
      if (!n) { print ""; exit } for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
      print (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }' "$RESULTS"
}
echo "gate B → gate A through a relay, 127.0.0.1, medians of $ROUNDS rounds (${SECS} s per throughput run, ${SETUPS} sequential setups), $(machine)"
echo "load average: $LOAD0 at start, $LOAD1 at end; ugate rev $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
printf '%-12s %8s %8s %8s %9s %9s %9s %9s %9s\n' path "iperf3" "bulk" "× direct" "relay" "A" "B" "setup" "setup"
printf '%-12s %8s %8s %8s %9s %9s %9s %9s %9s\n' "" "Gbit/s" "Gbit/s" "(bulk)" "CPU s/GB" "CPU s/GB" "CPU s/GB" "p50 ms" "p90 ms"
for p in "${PATHS[@]}"; do
  printf '%-12s %8s %8s %8s %9s %9s %9s %9s %9s\n' "$p" "$(fmt "$(med all "$p" iperf_gbps)" '%.2f')" \
    "$(fmt "$(med all "$p" bulk_gbps)" '%.2f')" "$(fmt "$(ratio bulk_gbps "$p" direct)" '%.2f')" \
    "$(fmt "$(med all "$p" relay_cpu_s_gb)" '%.3f')" "$(fmt "$(med all "$p" a_cpu_s_gb)" '%.3f')" \
    "$(fmt "$(med all "$p" b_cpu_s_gb)" '%.3f')" "$(fmt "$(med all "$p" setup_p50_ms)" '%.3f')" "$(fmt "$(med all "$p" setup_p90_ms)" '%.3f')"
done
echo "per round, bulk Gbit/s: $(for p in "${PATHS[@]}"; do printf '%s %s; ' "$p" "$(rounds_of all "$p" bulk_gbps '%.2f')"; done)"
echo "ratios (medians of per-round ratios):"
echo "  iperf3 mesh-relay ÷ direct: $(fmt "$(ratio iperf_gbps mesh-relay direct)" '%.2f') ×"
echo "  setup p50 mesh-relay ÷ direct: $(fmt "$(ratio setup_p50_ms mesh-relay direct)" '%.2f') ×; sni-relay ÷ direct: $(fmt "$(ratio setup_p50_ms sni-relay direct)" '%.2f') ×"
if [[ -n $LIMIT ]]; then
  echo "  relay CPU per GB (bulk) sni-relay ÷ limit_relay: $(fmt "$(ratio relay_cpu_s_gb sni-relay limit_relay)" '%.2f') ×;" \
    "mesh-relay ÷ limit_relay: $(fmt "$(ratio relay_cpu_s_gb mesh-relay limit_relay)" '%.2f') ×"
  echo "  relay CPU per GB (iperf3) mesh-relay ÷ limit_relay: $(fmt "$(ratio iperf_relay_cpu_s_gb mesh-relay limit_relay)" '%.2f') ×"
fi
echo "(iperf3 goes through a socat front on every path: SOCKS4A to B for mesh-relay; none over sni-relay,"
echo " iperf3 sends no ClientHello. CPU: utime+stime per 10⁹ bytes; the relay is the VPS ugate or limit_relay;"
echo " every process shares the same CPUs)"
