#!/usr/bin/env bash
# bench/sni-relay.sh — relay over SNI vs direct (not a test), on 127.0.0.1.
#
# A relay (park + sni listeners) and a gate (sniRelay entry, rule forwarding
# the name to a sink) run as two ugate processes with identities made here
# (`ugate identity init`; openssl signs the gate's). Each round, every path:
#   direct       client → sink
#   sni-relay    client → relay (sni, paired) → parked connection → gate → sink
#   limit_relay  client → limit_relay → sink (the plain splice relay yardstick)
# Throughput: one connection that opens with a TLS ClientHello and then
# streams bulk bytes for BENCH_SECONDS (bench/sni-load.mjs). CPU on the relay
# per GB: utime+stime of the relay process (ugate's relay, or limit_relay)
# over the bytes. Setup time: BENCH_SETUPS sequential connections, connect →
# the sink's first byte (pool refill included). Prints one table and the
# load average.
#
# Environment:
#   BENCH_SECONDS=5   BENCH_ROUNDS=2   BENCH_SETUPS=200
#   UGATE_BIN=build/ugate
#   LIMIT_RELAY_SRC=../shared/bench/limit_relay.c (left out if absent)
#   BENCH_OUT=DIR     also leave results.tsv there (bench/run.sh reads the printed table instead)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[[ $# -eq 0 ]] || bad_arg "$1"
relay_bench_settings
LOAD=$ROOT/bench/sni-load.mjs
NAME=app.bench.test

# ---------------------------------------------------------------- identities
ID=$TMP/id
mkdir -p "$ID/relay"
"$UGATE_BIN" identity init --dir "$ID/relay" --trust-domain bench.test --namespace vps --sa relay >/dev/null
sign_identity "$ID/gate" "$ID/relay" spiffe://bench.test/ns/home/sa/gate

# ---------------------------------------------------------------- processes
free_port SINK; TAKEN+="$SINK "; free_port PARK; TAKEN+="$PARK "; free_port SNI; TAKEN+="$SNI "; free_port LIM
start_bg "$TMP/sink.log" node "$LOAD" sink "$SINK"
wait_listen "$SINK" "$BG_PID" "$TMP/sink.log"
limits='"limits":{"maxConnections":0,"maxPerSource":0},"relay":{"shutdownGrace":0},"log":{"level":"warn"}'
cat >"$TMP/relay.json" <<JSON
{$limits,"mesh":{"identityDir":"$ID/relay","trustDomain":"bench.test"},
 "listeners":[{"name":"park","type":"park","listen":"127.0.0.1:$PARK","grants":{"spiffe://bench.test/ns/home/sa/gate":["$NAME"]}},
              {"name":"tls","type":"sni","listen":"127.0.0.1:$SNI","pair":"park"}]}
JSON
cat >"$TMP/gate.json" <<JSON
{$limits,"mesh":{"identityDir":"$ID/gate","trustDomain":"bench.test"},
 "listeners":[{"name":"local","type":"mixed","listen":"127.0.0.1:0"}],
 "sniRelay":[{"name":"vps","relay":"127.0.0.1:$PARK","names":["$NAME"],"pool":4}],
 "rules":[{"domain":["$NAME"],"listener":["vps"],"action":"forward:127.0.0.1:$SINK"}]}
JSON
start_bg "$TMP/relay.log" "$UGATE_BIN" run --config "$TMP/relay.json"; RELAY=$BG_PID
wait_listen "$SNI" "$RELAY" "$TMP/relay.log"
start_bg "$TMP/gate.log" "$UGATE_BIN" run --config "$TMP/gate.json"; GATE=$BG_PID
for _ in $(seq 100); do [[ $(ss -tn state established "( dport = :$PARK )" | tail -n +2 | wc -l) -ge 4 ]] && break; sleep 0.05; done
LIMIT=
if [[ -f $LIMIT_RELAY_SRC ]]; then
  gcc -O2 -o "$TMP/limit_relay" "$LIMIT_RELAY_SRC"
  start_bg "$TMP/limit.log" "$TMP/limit_relay" "$LIM" "$SINK"; LIMIT=$BG_PID
  wait_listen "$LIM" "$LIMIT" "$TMP/limit.log"
else
  log "no $LIMIT_RELAY_SRC: limit_relay left out"
fi

# ---------------------------------------------------------------- runs
RES=${BENCH_OUT:-$TMP}/results.tsv   # round path metric value
: >"$RES"
LOAD0=$(load1)
paths="direct sni-relay${LIMIT:+ limit_relay}"
for r in $(seq "$ROUNDS"); do
  for p in $paths; do
    case $p in direct) port=$SINK pid= ;; sni-relay) port=$SNI pid=$RELAY ;; limit_relay) port=$LIM pid=$LIMIT ;; esac
    c0=0; [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    j=$(node "$LOAD" bulk "$port" "$NAME" "$SECS")
    c1=0; [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
    gbps=$(jq -r .gbps <<<"$j"); bytes=$(jq -r .bytes <<<"$j")
    printf '%s\t%s\tgbps\t%s\n' "$r" "$p" "$gbps" >>"$RES"
    [[ -n $pid ]] && printf '%s\t%s\tcpu_s_gb\t%s\n' "$r" "$p" \
      "$(awk -v c=$((c1 - c0)) -v t="$CLK_TCK" -v b="$bytes" 'BEGIN { printf "%.4g", (c / t) / (b / 1e9) }')" >>"$RES"
    s=$(node "$LOAD" setup "$port" "$NAME" "$SETUPS")
    printf '%s\t%s\tsetup_p50_ms\t%s\n%s\t%s\tsetup_p90_ms\t%s\n' "$r" "$p" "$(jq -r '.p50 | . * 1000 | round / 1000' <<<"$s")" \
      "$r" "$p" "$(jq -r '.p90 | . * 1000 | round / 1000' <<<"$s")" >>"$RES"
  done
done
LOAD1=$(load1)

# ---------------------------------------------------------------- report
echo "relay over SNI, 127.0.0.1, one connection per run (${SECS} s bulk; ${SETUPS} sequential setups), $(machine)"
echo "load average: $LOAD0 at start, $LOAD1 at end"
printf '%-6s %-12s %10s %12s %14s %14s\n' round path Gbit/s "CPU s/GB" "setup p50 ms" "setup p90 ms"
awk -F'\t' '{ v[$1 FS $2 FS $3] = $4; if (!(($1 FS $2) in seen)) { seen[$1 FS $2]; order[++n] = $1 FS $2 } }
  END { for (i = 1; i <= n; i++) { split(order[i], k, FS); key = order[i] FS
    printf "%-6s %-12s %10.2f %12s %14s %14s\n", k[1], k[2], v[key "gbps"], (key "cpu_s_gb") in v ? v[key "cpu_s_gb"] : "-", v[key "setup_p50_ms"], v[key "setup_p90_ms"] } }' "$RES"
echo "(CPU s/GB: the relay process only — the gate is a second hop; direct has no relay)"
