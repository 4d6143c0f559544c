# shellcheck shell=bash
# Shared helpers of the bench scripts (bench/relay.sh, bench/run.sh, ...):
# processes started in their own process group and always stopped on exit,
# free ports, readiness by event, CPU and memory of a process, a client —
# gateway — server trio of network namespaces. Sourced, never run; expects
# bash with `set -euo pipefail`. Builds on openwrt/lib.sh (say, die, need,
# apt_install; ROOT).
# shellcheck source=openwrt/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../openwrt/lib.sh"

log() { echo "$*" >&2; }
# -h/--help: the calling script's header comment (sourced before the script reads its arguments)
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi
bad_arg() { echo "$(basename "$0"): unknown argument '$1' (try --help)" >&2; exit 2; }
# shellcheck disable=SC2034  # used by the scripts that source this file
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- processes
# TMP: this run's scratch directory; PIDS: what start_bg started; CLEANUP:
# commands run first on exit (network namespaces, nft tables).
TMP=$(mktemp -d "/tmp/ugate-$(basename "$0" .sh)-bench.XXXXXX")
PIDS=()
CLEANUP=()
stop_pid() {  # stop a process started by start_bg (its whole process group)
  local pid=$1 _
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid c
  trap - ERR
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  for c in "${CLEANUP[@]}"; do eval "$c" || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "$(basename "$0"): error: command failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'log "$(basename "$0"): interrupted"; exit 130' INT TERM

# start_bg LOGFILE CMD... : run CMD in its own session/process group; sets BG_PID
start_bg() {
  local logf=$1; shift
  setsid "$@" >"$logf" 2>&1 </dev/null &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
forget_pid() { local p out=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || out+=("$p"); done; PIDS=("${out[@]}"); }
stop_bg() { stop_pid "$1"; forget_pid "$1"; }

# ---------------------------------------------------------------- ports
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
  local p _ lo=10000 hi=$((EPH_LOW - 1))
  ((hi > lo + 1000)) || { lo=40000; hi=60000; }
  for _ in $(seq 500); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
    [[ $TAKEN == *" $p "* ]] && continue
    port_in_use "$p" && continue
    TAKEN+="$p "; printf -v "$1" '%s' "$p"; return 0
  done
  die "no free TCP port found"
}
show_log() { log "---- $1 (last lines)"; tail -n 20 "$1" >&2 || true; log "----"; }
wait_listen() {  # PORT PID LOG [NETNS]
  local _ tcp=(/proc/net/tcp /proc/net/tcp6)
  [[ -z ${4:-} ]] || tcp=(/proc/"$2"/net/tcp /proc/"$2"/net/tcp6)
  for _ in $(seq 200); do
    grep -qE "^ *[0-9]+: [0-9A-F]+:$(hexport "$1") [0-9A-F]+:[0-9A-F]+ 0A " "${tcp[@]}" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { show_log "$3"; die "process $2 exited before listening on port $1"; }
    sleep 0.05
  done
  show_log "$3"; die "nothing listens on port $1 after 10 s"
}
wait_held() {  # PID OUT SECONDS WHAT : a load holder (connections, flows) printed "held ..." in OUT, or die
  local _
  for _ in $(seq $(($3 * 20))); do
    grep -q '^held' "$2" && return 0
    kill -0 "$1" 2>/dev/null || { cat "$2" >&2; die "$4: the holder failed"; }
    sleep 0.05
  done
  die "$4: not up within $3 s"
}
wait_ready_line() {  # PID LOG : ugate prints "... info ready listeners=1"
  local _
  for _ in $(seq 200); do
    grep -qE 'ready listeners=[0-9]+' "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || { show_log "$2"; die "ugate exited before printing its ready line"; }
    sleep 0.05
  done
  show_log "$2"; die "ugate printed no 'ready listeners=' line within 10 s"
}

# ---------------------------------------------------------------- measures
cpu_ticks() {  # LEADER...: utime+stime+cutime+cstime (reaped children) of each leader +
  # utime+stime of the live processes of their process groups (start_bg gives each its own group)
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^\([0-9]*\) (.*) /\1 /' |
    awk -v gs=" $* " 'index(gs, " " $4 " ") { t += $13 + $14; if ($1 == $4) t += $15 + $16 } END { print t + 0 }'
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || true; }
group_rss_kb() {  # LEADER: VmRSS summed over the live processes of its process group
  local p s=0 v
  for p in $(ps -o pid= -g "$1" 2>/dev/null); do v=$(status_kb "$p" VmRSS); s=$((s + ${v:-0})); done
  echo "$s"
}
load1() { awk '{print $1}' /proc/loadavg; }
machine() {  # one line: CPUs, model, kernel
  local m
  m=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  echo "$(nproc) CPUs, ${m:-$(uname -m)}, kernel $(uname -r)"
}

# ---------------------------------------------------------------- settings
# relay_bench_settings: SECS ROUNDS SETUPS UGATE_BIN LIMIT_RELAY_SRC from the
# environment, checked (bench/sni-relay.sh, bench/mesh-relay.sh: their headers say the defaults)
# shellcheck disable=SC2034  # the settings are for the calling script
relay_bench_settings() {
  SECS=${BENCH_SECONDS:-5}
  ROUNDS=${BENCH_ROUNDS:-2}
  SETUPS=${BENCH_SETUPS:-200}
  UGATE_BIN=${UGATE_BIN:-$ROOT/build/ugate}
  LIMIT_RELAY_SRC=${LIMIT_RELAY_SRC:-$ROOT/../shared/bench/limit_relay.c}
  local v
  for v in SECS ROUNDS SETUPS; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v: '${!v}' is not a positive integer"; done
  [[ -x $UGATE_BIN ]] || die "$UGATE_BIN not found: run ./build.sh first"
  need node nodejs
  need openssl openssl
}

# ---------------------------------------------------------------- identities
# sign_identity DIR CA_DIR SPIFFE_ID : a mesh identity in DIR (key.pem, cert-chain.pem,
# root-cert.pem) signed by the CA of CA_DIR (`ugate identity init` made it;
# ugate has no signing command): P-256, the SPIFFE id as URI SAN, server and client use
sign_identity() {
  local d=$1
  mkdir -p "$d"
  cp "$2/root-cert.pem" "$d/"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/key.pem"
  openssl req -new -key "$d/key.pem" -subj "/CN=${3##*/}" -out "$d/csr.pem" 2>/dev/null
  printf 'subjectAltName=URI:%s\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$d/ext.cnf"
  openssl x509 -req -in "$d/csr.pem" -CA "$2/root-cert.pem" -CAkey "$2/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/cert-chain.pem" 2>/dev/null
}

# ---------------------------------------------------------------- namespaces
# netns_trio CLI GW_LAN GW_WAN SRV : network namespaces $NS-cli — $NS-gw —
# $NS-srv (veths c0—g1 and g2—s0, /24s, IPv4), the gw routing between them,
# each end's default route through it; removed on exit. The caller sets NS.
nsx() { local ns=$1; shift; ip netns exec "$NS-$ns" "$@"; }
netns_trio() {
  local n d x
  CLEANUP+=("ip netns del $NS-cli 2>/dev/null" "ip netns del $NS-gw 2>/dev/null" "ip netns del $NS-srv 2>/dev/null")
  for n in cli gw srv; do ip netns add "$NS-$n"; nsx "$n" ip link set lo up; done
  ip link add c0 netns "$NS-cli" type veth peer name g1 netns "$NS-gw"
  ip link add g2 netns "$NS-gw" type veth peer name s0 netns "$NS-srv"
  nsx cli ip addr add "$1/24" dev c0
  nsx gw ip addr add "$2/24" dev g1
  nsx gw ip addr add "$3/24" dev g2
  nsx srv ip addr add "$4/24" dev s0
  for x in "cli c0" "gw g1" "gw g2" "srv s0"; do read -r n d <<<"$x"; nsx "$n" ip link set "$d" up; done
  nsx cli ip route add default via "$2"
  nsx srv ip route add default via "$3"
  nsx gw sysctl -qw net.ipv4.ip_forward=1
}

# ---------------------------------------------------------------- peers
NGX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so
nginx_conf() {  # FILE NAME BODY : an nginx config running in the foreground from $TMP/NAME
  [[ -f $NGX_STREAM ]] || die "$NGX_STREAM missing: apt-get install libnginx-mod-stream"
  mkdir -p "$TMP/$2"
  cat >"$1" <<EOF
# generated by $(basename "$0")
load_module $NGX_STREAM;
daemon off;
worker_processes auto;
pid $TMP/$2/nginx.pid;
error_log $TMP/$2/error.log warn;
events { worker_connections 8192; }
$3
EOF
}
# start_origin MIB: nginx on 127.0.0.1:$ORIGIN serving $WWW/small (6 bytes) and $WWW/big (MIB MiB)
start_origin() {
  WWW=$TMP/www
  chmod 755 "$TMP"  # nginx workers run as nobody and read the files served from here
  mkdir -p "$WWW"
  printf 'hello\n' >"$WWW/small"
  truncate -s "${1}M" "$WWW/big"
  free_port ORIGIN
  nginx_conf "$TMP/origin.conf" origin "http {
  access_log off; sendfile on; keepalive_timeout 0;
  client_body_temp_path $TMP/origin/body; proxy_temp_path $TMP/origin/proxy;
  fastcgi_temp_path $TMP/origin/fcgi; uwsgi_temp_path $TMP/origin/uwsgi; scgi_temp_path $TMP/origin/scgi;
  server { listen 127.0.0.1:$ORIGIN; root $WWW; }
}"
  start_bg "$TMP/origin.log" nginx -c "$TMP/origin.conf" -p "$TMP/origin"
  wait_listen "$ORIGIN" "$BG_PID" "$TMP/origin.log"
  [[ $(curl -s "http://127.0.0.1:$ORIGIN/small") == hello ]] || die "the origin nginx does not serve /small"
}
ugate_conf() {  # FILE LISTENER-JSON: limits out of the way, no shutdown grace
  cat >"$1" <<EOF
{ "limits": { "maxConnections": 20000, "maxPerSource": 20000 },
  "relay": { "shutdownGrace": 0 },
  "listeners": [ $2 ] }
EOF
}

# ---------------------------------------------------------------- reports
# Over $RESULTS, rows "round key peer metric value" (tab-separated; key: a
# size, a stream count, a kind of run).
med() {  # KEY PEER METRIC: the median over the rounds ("" when none)
  awk -F'\t' -v k="$1" -v p="$2" -v m="$3" '$2 == k && $3 == p && $4 == m { v[++n] = $5 }
    END { if (!n) { print ""; exit } for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }' "$RESULTS"
}
rounds_of() {  # KEY PEER METRIC FORMAT: every round's value, comma-separated
  awk -F'\t' -v k="$1" -v p="$2" -v m="$3" -v f="$4" '$2 == k && $3 == p && $4 == m { o = o (o == "" ? "" : ", ") sprintf(f, $5) } END { print o }' "$RESULTS"
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "") print "–"; else printf f, v }'; }  # VALUE FORMAT ("–" when none)

# ---------------------------------------------------------------- docs
# write_section DOC BEGIN_MARK END_MARK REPORT: replace what lies between the
# marker lines of DOC with REPORT (markers appended when missing)
write_section() {
  local doc=$1 b=$2 e=$3 rep=$4
  if [[ ! -f $doc ]]; then mkdir -p "$(dirname "$doc")"; printf '# Performance\n' >"$doc"; fi
  if ! grep -qF "$b" "$doc" || ! grep -qF "$e" "$doc"; then printf '\n%s\n%s\n' "$b" "$e" >>"$doc"; fi
  awk -v b="$b" -v e="$e" -v rep="$rep" '
    $0 == b { print; while ((getline l < rep) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }
  ' "$doc" >"$TMP/doc.new"
  cat "$TMP/doc.new" >"$doc"
  log "wrote $doc"
}
