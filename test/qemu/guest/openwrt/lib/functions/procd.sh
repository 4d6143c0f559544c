# shellcheck shell=dash
# /lib/functions/procd.sh — STAND-IN FOR THE QEMU TEST IMAGE ONLY (never packaged).
#
# The procd shell API of OpenWrt init scripts (procd_open_instance,
# procd_set_param, procd_send_signal, ...) without procd or ubus: a tiny
# library that records each instance's params as files and runs its command
# in the background under a small supervisor.
#
# State: /var/run/procd/SERVICE/INSTANCE/ holds one file per param (one
# value a line: command, respawn, env, limits, file, reload_signal,
# term_timeout, stdout, stderr, user, ...), plus pid (the command's pid),
# supervisor (its pid), files.md5 (the `file` params' checksums when set),
# exits (one line per exit of the command) and log.
#
# What procd does and this does too:
#   - `procd_close_service` (the end of `start`) compares the new instance
#     with the running one: not running → start; command, env, limits,
#     respawn, user, ... changed → restart; only the content of a `file`
#     param changed → send reload_signal if set, else restart; nothing
#     changed → nothing. Instances no longer declared are stopped.
#   - respawn: the command is started again after an exit, after
#     respawn_timeout seconds, at most respawn_retry times (defaults 3600 5 5).
#   - stdout/stderr 1: the command's output goes to the "syslog", here
#     /tmp/log/SERVICE.log (and, line by line, nowhere else). With 0 procd
#     drops it; here it goes to /tmp/log/SERVICE.dropped, so a test can tell.
#   - procd_kill: SIGTERM, SIGKILL after term_timeout (default 5) seconds.
#     Unlike procd (which answers the ubus call at once) this waits for the
#     exit, so the next command sees a stopped service.
#   - limits nofile="SOFT HARD", env, user (via busybox setpriv) are applied.
#   - procd_send_signal SERVICE [INSTANCE|'*'] [SIGNAL]: default SIGHUP.
# Triggers (config.change, interface.*) and validation are recorded in
# SERVICE/triggers and otherwise ignored: nothing here sends events.

PROCD_STATE=/var/run/procd
PROCD_LOG=/tmp/log
_PROCD_SERVICE=
_PROCD_SCRIPT=
_PROCD_SEQ=0
_PROCD_NEW=
_PROCD_INST=

procd_lock() { return 0; }

_procd_log() { echo "$(cut -d" " -f1 /proc/uptime) procd-standin: $*" >> "$PROCD_LOG/procd.log"; }

procd_open_service() {  # procd_open_service NAME [SCRIPT]
	_PROCD_SERVICE=$1
	_PROCD_SCRIPT=$2
	_PROCD_SEQ=0
	_PROCD_NEW=$PROCD_STATE/.new.$$
	rm -rf "$_PROCD_NEW"
	mkdir -p "$_PROCD_NEW" "$PROCD_LOG"
	: > "$_PROCD_NEW/.triggers"
}

procd_open_instance() {  # procd_open_instance [NAME]
	_PROCD_SEQ=$((_PROCD_SEQ + 1))
	_PROCD_INST=${1:-instance$_PROCD_SEQ}
	mkdir -p "$_PROCD_NEW/$_PROCD_INST"
}

procd_set_param() {  # procd_set_param TYPE [VALUE...]
	local type=$1 f
	shift
	[ -n "$_PROCD_INST" ] || { _procd_log "procd_set_param $type outside an instance"; return 1; }
	f=$_PROCD_NEW/$_PROCD_INST/$type
	: > "$f"
	for v in "$@"; do printf '%s\n' "$v" >> "$f"; done
}

procd_append_param() {  # procd_append_param TYPE [VALUE...]
	local type=$1 f
	shift
	f=$_PROCD_NEW/$_PROCD_INST/$type
	for v in "$@"; do printf '%s\n' "$v" >> "$f"; done
}

procd_close_instance() {
	local d=$_PROCD_NEW/$_PROCD_INST
	if [ -f "$d/respawn" ] && [ ! -s "$d/respawn" ]; then printf '3600\n5\n5\n' > "$d/respawn"; fi
	_PROCD_INST=
}

procd_add_instance() {  # procd_add_instance COMMAND...
	procd_open_instance
	procd_set_param command "$@"
	procd_close_instance
}

# Triggers and validation: recorded only.
procd_open_trigger() { return 0; }
procd_close_trigger() { return 0; }
procd_add_reload_trigger() { echo "config.change $*" >> "$_PROCD_NEW/.triggers"; }
procd_add_config_trigger() { echo "$*" >> "$_PROCD_NEW/.triggers"; }
procd_add_interface_trigger() { echo "$*" >> "$_PROCD_NEW/.triggers"; }
procd_add_reload_interface_trigger() { echo "interface.* $*" >> "$_PROCD_NEW/.triggers"; }
procd_add_raw_trigger() { echo "$*" >> "$_PROCD_NEW/.triggers"; }
procd_add_reload_data_trigger() { echo "service.data.update $*" >> "$_PROCD_NEW/.triggers"; }
procd_add_mount_trigger() { echo "mount $*" >> "$_PROCD_NEW/.triggers"; }
procd_add_reload_mount_trigger() { echo "mount $*" >> "$_PROCD_NEW/.triggers"; }
procd_add_restart_mount_trigger() { echo "mount $*" >> "$_PROCD_NEW/.triggers"; }
procd_add_validation() { return 0; }
procd_open_validate() { return 0; }
procd_close_validate() { return 0; }
procd_open_data() { return 0; }
procd_close_data() { return 0; }
procd_add_jail() { return 0; }
procd_add_jail_mount() { return 0; }
procd_add_jail_mount_rw() { return 0; }
procd_set_config_changed() { return 0; }
procd_add_mdns() { return 0; }
procd_add_mdns_service() { return 0; }

# md5 of every `file` param's content ("-" for a missing file).
_procd_files_md5() {  # _procd_files_md5 INSTDIR
	local f
	[ -f "$1/file" ] || return 0
	while IFS= read -r f; do
		if [ -f "$f" ]; then md5sum < "$f" | cut -d' ' -f1; else echo -; fi
	done < "$1/file"
}

# The params procd compares (everything but `file`, whose content counts instead).
_procd_params() {  # _procd_params INSTDIR
	local f
	for f in "$1"/*; do
		[ -f "$f" ] || continue
		case ${f##*/} in file | pid | supervisor | files.md5 | exits | stopping) continue ;; esac
		echo "== ${f##*/}"
		cat "$f"
	done
}

_procd_signum() {  # _procd_signum NAME|NUMBER
	case "$1" in
		'' ) echo 1 ;;
		*[!0-9]*) kill -l "${1#SIG}" 2>/dev/null ;;
		*) echo "$1" ;;
	esac
}

_procd_alive() {  # _procd_alive INSTDIR
	local pid
	pid=$(cat "$1/pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Run the instance's command once, in this process (exec), with its params.
_procd_exec() {  # _procd_exec INSTDIR
	local d=$1 line soft hard out=/dev/null err=/dev/null service=$2
	set --
	while IFS= read -r line; do set -- "$@" "$line"; done < "$d/command"
	[ $# -gt 0 ] || { _procd_log "$service: empty command"; exit 1; }
	export PATH=/usr/sbin:/usr/bin:/sbin:/bin
	if [ -f "$d/env" ]; then
		# shellcheck disable=SC2163  # each line is NAME=VALUE
		while IFS= read -r line; do export "$line"; done < "$d/env"
	fi
	if [ -f "$d/limits" ]; then
		while IFS= read -r line; do
			case "$line" in
				nofile=*)
					line=${line#nofile=}
					soft=${line% *}
					hard=${line#* }
					ulimit -H -n "$hard" 2>/dev/null || _procd_log "$service: ulimit -H -n $hard failed"
					ulimit -S -n "$soft" 2>/dev/null || _procd_log "$service: ulimit -S -n $soft failed"
					;;
				*) _procd_log "$service: limit '$line' not applied by the stand-in" ;;
			esac
		done < "$d/limits"
	fi
	[ "$(cat "$d/stdout" 2>/dev/null)" = 1 ] && out=$PROCD_LOG/$service.log || out=$PROCD_LOG/$service.dropped
	[ "$(cat "$d/stderr" 2>/dev/null)" = 1 ] && err=$PROCD_LOG/$service.log || err=$PROCD_LOG/$service.dropped
	cd /
	if [ -s "$d/user" ]; then
		local user
		user=$(cat "$d/user")
		exec setpriv --reuid="$user" --regid="$(cat "$d/group" 2>/dev/null || echo "$user")" --clear-groups \
			"$@" < /dev/null >> "$out" 2>> "$err"
	fi
	exec "$@" < /dev/null >> "$out" 2>> "$err"
}

# Supervisor: runs the command, respawns it per its respawn param.
_procd_spawn() {  # _procd_spawn SERVICE INSTDIR
	local service=$1 d=$2
	rm -f "$d/stopping" "$d/pid"
	(
		tries=0
		set -- $(cat "$d/respawn" 2>/dev/null)
		timeout=${2:-5} retry=${3:-5}
		while :; do
			(_procd_exec "$d" "$service") &
			child=$!
			echo "$child" > "$d/pid"
			wait "$child"
			rc=$?
			echo "$(cut -d' ' -f1 /proc/uptime) pid=$child exit=$rc" >> "$d/exits"
			[ -e "$d/stopping" ] && break
			[ -f "$d/respawn" ] || break
			tries=$((tries + 1))
			[ "$tries" -le "$retry" ] || { _procd_log "$service: respawn limit ($retry) reached"; break; }
			_procd_log "$service: exited ($rc), respawn in ${timeout}s"
			sleep "$timeout"
			[ -e "$d/stopping" ] && break
			_procd_log "$service: respawn $tries/$retry"
		done
		rm -f "$d/pid"
	) < /dev/null >> "$PROCD_LOG/procd.log" 2>&1 &
	# (Its own stdio never holds the caller's: a caller reading our output
	# through a pipe would otherwise wait for the daemon's end.)
	echo $! > "$d/supervisor"
	# The pid file is written by the supervisor; wait until it is there.
	local i=0
	while [ ! -s "$d/pid" ] && [ $i -lt 100 ]; do usleep 10000; i=$((i + 1)); done
	_procd_log "$service: started $(cat "$d/pid" 2>/dev/null) ($(tr '\n' ' ' < "$d/command"))"
}

_procd_stop() {  # _procd_stop SERVICE INSTDIR
	local service=$1 d=$2 pid timeout i=0
	touch "$d/stopping"
	pid=$(cat "$d/pid" 2>/dev/null)
	timeout=$(cat "$d/term_timeout" 2>/dev/null)
	timeout=${timeout:-5}
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		while kill -0 "$pid" 2>/dev/null && [ $i -lt $((timeout * 10)) ]; do usleep 100000; i=$((i + 1)); done
		if kill -0 "$pid" 2>/dev/null; then
			_procd_log "$service: pid $pid still there after ${timeout}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	# The supervisor notices and goes; one waiting to respawn is ended here.
	pid=$(cat "$d/supervisor" 2>/dev/null)
	i=0
	while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 25 ]; do usleep 20000; i=$((i + 1)); done
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
	_procd_log "$service: stopped ${d##*/}"
}

procd_close_service() {  # procd_close_service [set|add]
	local method=${1:-set} sdir=$PROCD_STATE/$_PROCD_SERVICE new old inst declared=
	type service_triggers >/dev/null 2>&1 && service_triggers
	mkdir -p "$sdir"
	mv "$_PROCD_NEW/.triggers" "$sdir/triggers"
	for new in "$_PROCD_NEW"/*; do
		[ -d "$new" ] && declared="$declared ${new##*/}"
	done
	# "set" replaces the service's instance list: the ones not declared now go.
	if [ "$method" = set ]; then
		for old in "$sdir"/*; do
			[ -d "$old" ] || continue
			case " $declared " in *" ${old##*/} "*) continue ;; esac
			_procd_log "$_PROCD_SERVICE: ${old##*/} no longer declared: stop"
			_procd_stop "$_PROCD_SERVICE" "$old"
			rm -rf "$old"
		done
	fi
	for new in "$_PROCD_NEW"/*; do
		[ -d "$new" ] || continue
		inst=${new##*/}
		old=$sdir/$inst
		_procd_files_md5 "$new" > "$new/files.md5"
		if [ -d "$old" ] && _procd_alive "$old"; then
			if [ "$(_procd_params "$old")" != "$(_procd_params "$new")" ]; then
				_procd_log "$_PROCD_SERVICE: $inst changed: restart"
				_procd_stop "$_PROCD_SERVICE" "$old"
			elif ! cmp -s "$old/files.md5" "$new/files.md5"; then
				cp "$new/files.md5" "$old/files.md5"
				if [ -s "$old/reload_signal" ]; then
					_procd_log "$_PROCD_SERVICE: $inst config file changed: signal $(cat "$old/reload_signal")"
					kill -"$(_procd_signum "$(cat "$old/reload_signal")")" "$(cat "$old/pid")"
				else
					_procd_log "$_PROCD_SERVICE: $inst config file changed: restart"
					_procd_stop "$_PROCD_SERVICE" "$old"
				fi
			else
				_procd_log "$_PROCD_SERVICE: $inst unchanged"
			fi
			if _procd_alive "$old"; then rm -rf "$new"; continue; fi
		fi
		rm -rf "$old"
		mv "$new" "$old"
		_procd_spawn "$_PROCD_SERVICE" "$old"
	done
	rm -rf "$_PROCD_NEW"
}

procd_running() {  # procd_running SERVICE [INSTANCE]
	local d
	for d in "$PROCD_STATE/$1"/${2:-*}; do
		[ "${2:-*}" = '*' ] || d=$PROCD_STATE/$1/$2
		[ -d "$d" ] && _procd_alive "$d" && return 0
	done
	return 1
}

procd_kill() {  # procd_kill SERVICE [INSTANCE]
	local d
	for d in "$PROCD_STATE/$1"/*; do
		[ -d "$d" ] || continue
		[ -n "$2" ] && [ "$2" != '*' ] && [ "${d##*/}" != "$2" ] && continue
		_procd_stop "$1" "$d"
		rm -rf "$d"
	done
}

procd_send_signal() {  # procd_send_signal SERVICE [INSTANCE|*] [SIGNAL]
	local d sig pid
	sig=$(_procd_signum "${3:-HUP}") || return 1
	for d in "$PROCD_STATE/$1"/*; do
		[ -d "$d" ] || continue
		[ -n "$2" ] && [ "$2" != '*' ] && [ "${d##*/}" != "$2" ] && continue
		pid=$(cat "$d/pid" 2>/dev/null) || continue
		_procd_log "$1: signal $sig to ${d##*/} (pid $pid)"
		kill -"$sig" "$pid" 2>/dev/null
	done
}

procd_status() {  # procd_status SERVICE [INSTANCE]
	local d n=0 up=0
	for d in "$PROCD_STATE/$1"/*; do
		[ -d "$d" ] || continue
		[ -n "$2" ] && [ "${d##*/}" != "$2" ] && continue
		n=$((n + 1))
		_procd_alive "$d" && up=$((up + 1))
	done
	if [ $n -eq 0 ]; then echo inactive; return 3; fi
	if [ $up -eq $n ]; then echo running; return 0; fi
	if [ $up -gt 0 ]; then echo "running ($up/$n)"; return 0; fi
	echo "not running"
	return 5
}
