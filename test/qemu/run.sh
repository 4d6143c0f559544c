#!/usr/bin/env bash
# Boot the x86_64 router VM (test/qemu/build-image.sh) with ugate's .ipk and
# run the guest test (test/qemu/guest/): opkg-style install, start through
# /etc/init.d/ugate, capture on through uci-style edits + reload, then checks
# from this host through QEMU's port forwards (127.0.0.1 only).
#
#   test/qemu/run.sh [--ipk FILE] [--hold] [--timeout SEC]
#
#   --ipk FILE     the package (default: the one build/ipk/ugate_*_x86_64.ipk)
#   --hold         leave the host-side checks to the caller: when the guest
#                  prints "phase=host-checks", connect to the forwarded ports,
#                  then send one line to the control port (the guest answers
#                  "ok" and finishes). Without --hold this script does small
#                  checks of its own with bash's /dev/tcp.
#   --timeout SEC  the whole VM run (default 240)
#
# Output: one result a line, "QR key=value" (the guest's "@@ key=value"
# lines pass through as QR lines), e.g.
#   QR socks-port=41234            host ports (127.0.0.1) of the forwards
#   QR boot-to-ready=13.71         seconds from QEMU's start to ugate's ready line
#   QR phase=host-checks           the guest waits for the host now
#   QR conn=...                    ugate's access log lines
#   QR qemu-exit=0
#   QR result=pass                 (or fail; exit status 0 / 1)
# The timestamped console goes to build/qemu/console.log. A forward whose
# port was taken meanwhile makes the run start again with other ports (the
# port lines come again: the last ones count).
# Software emulation only (no KVM); needs qemu-system-x86_64 (Debian package
# qemu-system-x86), cpio and gzip.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
Q=$ROOT/build/qemu

die() { printf 'run.sh: error: %s\n' "$*" >&2; echo "QR error=$*"; echo "QR result=fail"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: install it with: apt-get install $2"; }

ipk='' hold=0 limit=240
while [ $# -gt 0 ]; do
  case $1 in
    --ipk) ipk=${2:?--ipk needs a file}; shift 2 ;;
    --hold) hold=1; shift ;;
    --timeout) limit=${2:?--timeout needs seconds}; shift 2 ;;
    *) die "unknown argument '$1' (--ipk FILE, --hold, --timeout SEC)" ;;
  esac
done
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
need gzip gzip
need timeout coreutils
[ -n "${EPOCHREALTIME:-}" ] || die "bash 5 or newer is needed (EPOCHREALTIME)"

# ---- the package ------------------------------------------------------------------------
if [ -z "$ipk" ]; then
  shopt -s nullglob
  found=("$ROOT"/build/ipk/ugate_*_x86_64.ipk)
  shopt -u nullglob
  [ ${#found[@]} -gt 0 ] || die "no build/ipk/ugate_<version>-r<release>_x86_64.ipk: build it first with: UGATE_ARCHS=x86_64 openwrt/build-ipk.sh"
  [ ${#found[@]} -eq 1 ] || die "several x86_64 packages in build/ipk (${found[*]##*/}): pass one with --ipk"
  ipk=${found[0]}
fi
[ -f "$ipk" ] || die "$ipk: no such file"
echo "QR ipk=${ipk#"$ROOT"/}"

# ---- the image: the cached base + this run's files (a second cpio archive) --------------------
paths=$("$HERE/build-image.sh") || die "test/qemu/build-image.sh failed"
kernel=$(sed -n 1p <<<"$paths")
base=$(sed -n 2p <<<"$paths")
echo "QR image=$(tr '\n' ';' < "$Q/image.info")"

W=$(mktemp -d "$Q/run.XXXXXX")
qpid=
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
  [ -f "$W/console.log" ] && cp "$W/console.log" "$Q/console.log"
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
O=$W/overlay
mkdir -p "$O/qtest"
cp -a "$HERE/guest/openwrt/." "$O/"
cp -a "$HERE/guest/qtest/." "$O/qtest/"
cp "$HERE/guest/init" "$O/init"
cp "$ipk" "$O/qtest/ugate.ipk"
chmod 0755 "$O/init" "$O"/qtest/*.sh "$O/etc/rc.common"
(cd "$O" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -n -1 > "$W/overlay.cpio.gz"
cat "$base" "$W/overlay.cpio.gz" > "$W/initrd.cpio.gz"

# ---- host ports -------------------------------------------------------------------------------
# Random free ports (listening ports of this machine read from /proc); if
# one is taken before QEMU binds it, QEMU says so and the run starts again.
listening() {
  local local_addr st
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r _ local_addr _ st _; do
    [ "$st" = 0A ] && printf '%d\n' "0x${local_addr##*:}"
  done
}
pick_ports() {
  local used p n=0
  used=" $(listening | tr '\n' ' ') "
  PORTS=()
  while [ ${#PORTS[@]} -lt 3 ] && [ $n -lt 1000 ]; do
    p=$((20000 + RANDOM % 40000))
    n=$((n + 1))
    case "$used" in *" $p "*) continue ;; esac
    case " ${PORTS[*]:-} " in *" $p "*) continue ;; esac
    PORTS+=("$p")
  done
  [ ${#PORTS[@]} -eq 3 ] || die "no free ports found"
}

# ---- host-side checks without --hold (bash /dev/tcp) ----------------------------------------------
host_checks() {  # host_checks SOCKS_PORT CAPTURE_PORT
  local reply hex ok_socks=0 ok_capture=0 msg
  msg="captured-$RANDOM-$RANDOM"
  if exec 3<>"/dev/tcp/127.0.0.1/$2"; then
    printf '%s\n' "$msg" >&3
    IFS= read -r -t 20 reply <&3 && [ "$reply" = "$msg" ] && ok_capture=1
    exec 3<&- 3>&-
  fi
  echo "QR host-capture=$([ $ok_capture = 1 ] && echo ok || echo "failed")"
  msg="socks-$RANDOM-$RANDOM"
  if exec 4<>"/dev/tcp/127.0.0.1/$1"; then
    printf '\x05\x01\x00' >&4
    hex=$(timeout 20 dd bs=1 count=2 <&4 2>/dev/null | od -An -tx1 | tr -d ' \n')
    if [ "$hex" = 0500 ]; then
      # CONNECT server.test:8000 (domain name, resolved by ugate)
      printf '\x05\x01\x00\x03\x0bserver.test\x1f\x40' >&4
      hex=$(timeout 20 dd bs=1 count=10 <&4 2>/dev/null | od -An -tx1 | tr -d ' \n')
      if [ "${hex:0:4}" = 0500 ]; then
        printf '%s\n' "$msg" >&4
        IFS= read -r -t 20 reply <&4 && [ "$reply" = "$msg" ] && ok_socks=1
      fi
    fi
    exec 4<&- 4>&-
  fi
  echo "QR host-socks=$([ $ok_socks = 1 ] && echo ok || echo "failed")"
  [ $ok_socks = 1 ] && [ $ok_capture = 1 ]
}

send_control() {  # send_control PORT LINE
  local reply
  exec 5<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%s\n' "$2" >&5
  IFS= read -r -t 20 reply <&5
  exec 5<&- 5>&-
  [ "$reply" = ok ]
}

since() {  # seconds since t0, 2 decimals
  local d=$((${EPOCHREALTIME/[.,]/} - ${t0/[.,]/}))
  printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000))
}

# ---- boot ----------------------------------------------------------------------------------------
console=$W/console.log  # copied to build/qemu/console.log at the end
host_ok=1
for attempt in 1 2 3; do
  pick_ports
  ps=${PORTS[0]} pc=${PORTS[1]} pk=${PORTS[2]}
  echo "QR socks-port=$ps"
  echo "QR capture-port=$pc"
  echo "QR control-port=$pk"
  net="user,id=n0,restrict=on,net=192.168.1.0/24,host=192.168.1.2,dhcpstart=192.168.1.100"
  net+=",hostfwd=tcp:127.0.0.1:$ps-192.168.1.1:1080"
  net+=",hostfwd=tcp:127.0.0.1:$pc-203.0.113.10:8000"
  net+=",hostfwd=tcp:127.0.0.1:$pk-192.168.1.1:9999"
  : > "$console"
  t0=$EPOCHREALTIME
  exec {qfd}< <(exec timeout --kill-after=5 "$limit" qemu-system-x86_64 -machine pc -accel tcg -m 256 -smp 1 \
    -nographic -no-reboot -kernel "$kernel" -initrd "$W/initrd.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1" \
    -netdev "$net" -device virtio-net-pci,netdev=n0,romfile= 2>&1 < /dev/null)
  qpid=$!
  retry=0 done_line=
  while IFS= read -r line <&"$qfd"; do
    line=${line%$'\r'}
    printf '%s %s\n' "$(since)" "$line" >> "$console"
    case $line in
      *"Could not set up host forwarding rule"*)
        retry=1
        ;;
      *"@@ "*)
        kv=${line#*@@ }
        case $kv in
          "at=guest-init "*) echo "QR boot-to-init=$(since)" ;;
          "at=ugate-ready "*) echo "QR boot-to-ready=$(since)" ;;
          guest-done=*) done_line=${kv#guest-done=} ;;
        esac
        echo "QR $kv"
        if [ "$kv" = phase=host-checks ] && [ $hold = 0 ]; then
          host_checks "$ps" "$pc" || host_ok=0
          send_control "$pk" "run.sh host checks: $([ $host_ok = 1 ] && echo ok || echo failed)" || echo "QR control=failed"
        fi
        ;;
    esac
  done
  wait "$qpid"
  qexit=$?
  qpid=
  exec {qfd}<&-
  if [ $retry = 1 ] && [ $attempt -lt 3 ]; then
    echo "QR note=a forwarded port was taken; starting again with other ports"
    continue
  fi
  break
done

echo "QR qemu-exit=$qexit"
echo "QR total-seconds=$(since)"
[ "$qexit" = 124 ] && echo "QR error=the VM did not finish within $limit s (timeout)"
guest_ok=0
[ "${done_line:-}" = ok ] && guest_ok=1
if [ "$qexit" = 0 ] && [ $guest_ok = 1 ] && [ $host_ok = 1 ]; then
  echo "QR result=pass"
  exit 0
fi
echo "QR result=fail"
echo "QR console=build/qemu/console.log"
exit 1
