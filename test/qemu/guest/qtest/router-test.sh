#!/bin/sh
# shellcheck shell=dash
# The test inside the router VM (run by /init once the network is up).
# Prints "@@ key=value" lines on the console; run.sh passes them on.
#
#   1. install /qtest/ugate.ipk like opkg: its postinst (default_postinst)
#      runs uci-defaults and enables + starts /etc/init.d/ugate, which starts
#      ugate under the procd stand-in with the shipped /etc/config/ugate;
#   2. wait for ugate's "ready" log line (the host times it on the console);
#   3. turn capture on as `uci set/add_list + uci commit` would (a redirect
#      listener 'tp', capture.listener=tp, port 8000 added to capture.ports;
#      lan stays the shipped 'br-lan'), then /etc/init.d/ugate reload: SIGHUP,
#      same pid, "reloaded" + "capture-on";
#   4. "@@ phase=host-checks": the host now talks to ugate through QEMU's
#      forwards, then connects to the control port (9999) when done;
#   5. report: ugate ctl status, ugate's log, nft tables, the guard counter;
#      /etc/init.d/ugate stop: capture-off, table gone, process gone.
set -u
say() { echo "@@ $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
LOG=/tmp/log/ugate.log
CONF=/etc/config/ugate
status=ok
bad() { say "check-failed=$*"; status=fail; }

# wait_log PATTERN SECONDS: until a line of ugate's log matches (grep -E).
wait_log() {
	local i=0 n=$(($2 * 50))
	while [ $i -lt $n ]; do
		grep -qE "$1" "$LOG" 2>/dev/null && return 0
		usleep 20000
		i=$((i + 1))
	done
	return 1
}
instance_pid() { cat /var/run/procd/ugate/instance1/pid 2>/dev/null; }
report_logs() {
	local line
	[ -f "$LOG" ] && while IFS= read -r line; do say "ugate-log=$line"; done < "$LOG"
	[ -f /tmp/log/ugate.dropped ] && while IFS= read -r line; do say "ugate-dropped-output=$line"; done < /tmp/log/ugate.dropped
	[ -f /tmp/log/procd.log ] && while IFS= read -r line; do say "procd=$line"; done < /tmp/log/procd.log
}
finish() {
	report_logs
	say "at=guest-done uptime=$(up)"
	say "guest-done=$status"
	exit 0
}

# ---- 1. install -------------------------------------------------------------------
say "at=install-start uptime=$(up)"
/bin/sh /qtest/opkg-install.sh /qtest/ugate.ipk || { bad "ipk install"; finish; }
say "at=install-done uptime=$(up)"

# ---- 2. ready -----------------------------------------------------------------------
if wait_log ' info ready ' 60; then
	say "at=ugate-ready uptime=$(up)"
	say "ready-line=$(grep -m1 ' info ready ' "$LOG")"
else
	bad "no 'ready' line from ugate within 60 s of the install"
	finish
fi
say "init-enabled=$(ls /etc/rc.d 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
for f in /etc/uci-defaults/*; do [ -e "$f" ] && say "uci-defaults-left=$f"; done
say "ugate-version=$(/usr/bin/ugate --version 2>&1)"
pid1=$(instance_pid)
say "ugate-pid=$pid1"
for p in command respawn stdout stderr limits file reload_signal term_timeout; do
	[ -f "/var/run/procd/ugate/instance1/$p" ] && say "procd-param-$p=$(tr '\n' ' ' < "/var/run/procd/ugate/instance1/$p" | sed 's/ $//')"
done
say "nofile-limit=$(grep 'Max open files' "/proc/$pid1/limits" | tr -s ' ' | cut -d' ' -f4,5)"
say "triggers=$(tr '\n' ';' < /var/run/procd/ugate/triggers)"

# ---- 3. capture on, reload ---------------------------------------------------------
E="/bin/sh /qtest/uci-edit.sh $CONF"
$E set tp=listener &&
	$E set tp.name=tp &&
	$E set tp.type=redirect &&
	$E set tp.address=:: &&
	$E set tp.port=15001 &&
	$E set capture.enabled=1 &&
	$E set capture.listener=tp &&
	$E add_list capture.ports=8000 || { bad "uci edits"; finish; }
while IFS= read -r line; do say "config=$line"; done < "$CONF"
check=$(/usr/bin/ugate check --config "$CONF" 2>&1) || bad "ugate check: $check"
say "config-check=$check"
reloads_before=$(grep -c ' info reloaded ' "$LOG")
say "at=reload-start uptime=$(up)"
/etc/init.d/ugate reload || bad "/etc/init.d/ugate reload exited $?"
if wait_log ' info capture-on ' 20 && wait_log ' info reloaded ' 20; then
	say "at=reloaded uptime=$(up)"
	say "reloaded-line=$(grep ' info reloaded ' "$LOG" | tail -n 1)"
	say "capture-on=$(grep ' info capture-on ' "$LOG" | tail -n 1)"
else
	bad "no 'reloaded' + 'capture-on' after the reload"
fi
[ "$(grep -c ' info reloaded ' "$LOG")" -gt "$reloads_before" ] || bad "reload did not reach ugate"
pid2=$(instance_pid)
say "reload-same-pid=$([ "$pid1" = "$pid2" ] && echo 1 || echo 0)"
nft list table inet ugate > /tmp/ugate.nft 2>&1 || bad "no table inet ugate after the reload"
while IFS= read -r line; do say "nft-ugate=$line"; done < /tmp/ugate.nft

# ---- 4. the host's turn --------------------------------------------------------------
say "phase=host-checks"
rm -f /tmp/qtest-control
timeout 150 nc -l -p 9999 -e /qtest/control.sh
if [ -s /tmp/qtest-control ]; then
	say "host-said=$(cat /tmp/qtest-control)"
else
	bad "the host never connected to the control port"
fi
say "at=host-checks-done uptime=$(up)"

# ---- 5. report, stop -----------------------------------------------------------------------
ctl=$(/usr/bin/ugate ctl --json --socket /var/run/ugate.sock status 2>&1) || bad "ugate ctl status: $ctl"
say "ctl-status=$(echo "$ctl" | tr '\n' ' ')"
grep ' info conn ' "$LOG" | while IFS= read -r line; do say "conn=$line"; done
guard=$(nft list table inet qtest_guard 2>&1)
say "forward-dropped-packets=$(echo "$guard" | sed -n 's/.*counter packets \([0-9]*\) bytes.*/\1/p')"
say "exits=$(tr '\n' ';' < /var/run/procd/ugate/instance1/exits 2>/dev/null)"
say "at=stop-start uptime=$(up)"
/etc/init.d/ugate stop || bad "/etc/init.d/ugate stop exited $?"
wait_log ' info stopped' 10 || bad "no 'stopped' line after /etc/init.d/ugate stop"
say "at=stop-done uptime=$(up)"
say "capture-off=$(grep -c ' info capture-off ' "$LOG")"
if nft list table inet ugate > /dev/null 2>&1; then say "table-after-stop=present"; bad "table inet ugate still there after stop"; else say "table-after-stop=absent"; fi
if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then say "process-after-stop=alive"; bad "ugate still running after stop"; else say "process-after-stop=gone"; fi
finish
