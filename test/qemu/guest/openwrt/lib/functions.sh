# shellcheck shell=dash
# /lib/functions.sh — STAND-IN FOR THE QEMU TEST IMAGE ONLY (never packaged).
#
# The parts of OpenWrt's base-files /lib/functions.sh that ugate's package
# uses, written for busybox ash without uci, libubox or procd:
#   - the uci config API of init scripts: config_load, config_get,
#     config_get_bool, config_set, config_foreach, config_list_foreach (the
#     same CONFIG_<section>_<option> variables as OpenWrt's);
#   - default_postinst / default_prerm, which the package's maintainer
#     scripts call: run the package's /etc/uci-defaults/* (a script that exits
#     0 is deleted), then enable + start (or stop + disable) its /etc/init.d/*,
#     taking the file list from /usr/lib/opkg/info/<pkg>.list as opkg writes it.
# config_load parses /etc/config/<pkg> itself (tab-indented, quoted values,
# comments: the form `uci export` and LuCI write) because there is no uci.

# shellcheck disable=SC2034  # N and LIST_SEP are part of the API
N="
"
LIST_SEP=" "

append() {  # append VAR VALUE [SEP]
	local _var="$1" _val="$2" _sep="${3:- }" _old
	eval "_old=\${$_var}"
	eval "$_var=\${_old:+\$_old\$_sep}\$_val"
}

list_contains() {  # list_contains VAR WORD
	local _val
	eval "_val=\" \${$1} \""
	case "$_val" in *" $2 "*) return 0 ;; esac
	return 1
}

get_bool() {  # get_bool VALUE [DEFAULT]
	case "$1" in
		1 | on | true | yes | enabled) echo 1 ;;
		0 | off | false | no | disabled) echo 0 ;;
		*) echo "$2" ;;
	esac
}

reset_cb() {
	config_cb() { return 0; }
	option_cb() { return 0; }
	list_cb() { return 0; }
}
reset_cb

package() { return 0; }

config() {  # config TYPE [NAME]
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	CONFIG_SECTION="${2:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$CONFIG_SECTION"
	config_set "$CONFIG_SECTION" TYPE "$1"
	config_cb "$1" "$CONFIG_SECTION"
}

option() {  # option NAME VALUE
	config_set "$CONFIG_SECTION" "$1" "$2"
	option_cb "$1" "$2"
}

list() {  # list NAME VALUE
	local _len
	config_get _len "$CONFIG_SECTION" "${1}_LENGTH" 0
	_len=$((_len + 1))
	config_set "$CONFIG_SECTION" "${1}_ITEM$_len" "$2"
	config_set "$CONFIG_SECTION" "${1}_LENGTH" "$_len"
	append "CONFIG_${CONFIG_SECTION}_$1" "$2" "$LIST_SEP"
	list_cb "$1" "$2"
}

config_set() {  # config_set SECTION OPTION VALUE
	case "$1$2" in *[!A-Za-z0-9_]*) return 1 ;; esac
	eval "CONFIG_${1}_${2}=\$3"
}

# config_get VAR SECTION OPTION [DEFAULT]  |  config_get SECTION OPTION (prints)
config_get() {
	case "$2${3:-$1}" in *[!A-Za-z0-9_]*) return 0 ;; esac
	if [ -z "$3" ]; then
		eval "echo \"\${CONFIG_${1}_${2}:-\$4}\""
	else
		eval "$1=\${CONFIG_${2}_${3}:-\$4}"
	fi
}

config_get_bool() {  # config_get_bool VAR SECTION OPTION [DEFAULT]
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	eval "$1=\$(get_bool \"\$_tmp\" \"\$4\")"
}

config_foreach() {  # config_foreach FUNCTION [TYPE] [ARGS...]
	local _fn="$1" _type="$2" _s _t
	[ $# -ge 2 ] && shift 2 || shift $#
	for _s in $CONFIG_SECTIONS; do
		config_get _t "$_s" TYPE
		[ -n "$_type" ] && [ "$_t" != "$_type" ] && continue
		"$_fn" "$_s" "$@"
	done
}

config_list_foreach() {  # config_list_foreach SECTION OPTION FUNCTION [ARGS...]
	[ $# -ge 3 ] || return 0
	local _sec="$1" _opt="$2" _fn="$3" _len _i=1 _v
	shift 3
	config_get _len "$_sec" "${_opt}_LENGTH"
	[ -n "$_len" ] || return 0
	while [ "$_i" -le "$_len" ]; do
		config_get _v "$_sec" "${_opt}_ITEM$_i"
		"$_fn" "$_v" "$@"
		_i=$((_i + 1))
	done
}

# The file as shell calls of config/option/list (what `uci export` + eval
# gives on OpenWrt). Values: '...' (literal), "..." (backslash escapes) or a
# bare word; `#` outside quotes starts a comment. A value spanning lines or a
# trailing `\` is not handled: such a file fails loudly here.
_uci_to_shell() {  # _uci_to_shell FILE
	awk '
	function q(s) { gsub(/\047/, "\047\\\047\047", s); return "\047" s "\047" }
	function word(   c, out, quote) {
		out = ""
		while (pos <= length(line)) {
			c = substr(line, pos, 1)
			if (c == " " || c == "\t") break
			if (c == "#") break
			if (c == "\047") {
				quote = index(substr(line, pos + 1), "\047")
				if (quote == 0) { bad = 1; return "" }
				out = out substr(line, pos + 1, quote - 1); pos += quote + 1; continue
			}
			if (c == "\"") {
				pos++
				while (pos <= length(line) && substr(line, pos, 1) != "\"") {
					if (substr(line, pos, 1) == "\\") pos++
					out = out substr(line, pos, 1); pos++
				}
				if (pos > length(line)) { bad = 1; return "" }
				pos++; continue
			}
			if (c == "\\") { pos++; if (pos > length(line)) { bad = 1; return "" } }
			out = out substr(line, pos, 1); pos++
		}
		return out
	}
	function skip() { while (pos <= length(line) && (substr(line, pos, 1) == " " || substr(line, pos, 1) == "\t")) pos++ }
	{
		line = $0; pos = 1; bad = 0; n = 0
		skip()
		while (pos <= length(line) && substr(line, pos, 1) != "#") {
			w[++n] = word(); if (bad) break
			skip()
		}
		if (bad) { printf "echo %s >&2; return 1\n", q(FILENAME ":" NR ": cannot parse (unterminated quote or continuation)"); exit }
		if (n == 0) next
		kw = w[1]
		if (kw == "c") kw = "config"; else if (kw == "o") kw = "option"; else if (kw == "l") kw = "list"; else if (kw == "p") kw = "package"
		if (kw == "config" && (n == 2 || n == 3)) print "config " q(w[2]) (n == 3 ? " " q(w[3]) : "")
		else if ((kw == "option" || kw == "list") && n == 3) print kw " " q(w[2]) " " q(w[3])
		else if (kw == "package" && n == 2) print "package " q(w[2])
		else { printf "echo %s >&2; return 1\n", q(FILENAME ":" NR ": not a uci statement: " $0); exit }
	}' "$1"
}

config_load() {  # config_load PACKAGE
	[ -n "$IPKG_INSTROOT" ] && return 0
	local _file="/etc/config/$1" _code
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	[ -f "$_file" ] || return 1
	_code=$(_uci_to_shell "$_file") || return 1
	eval "$_code"
}

# uci_get PACKAGE SECTION [OPTION] [DEFAULT] (OpenWrt's /lib/config/uci.sh),
# read through config_load in a subshell.
uci_get() {
	(
		config_load "$1" 2>/dev/null || exit 0
		if [ -n "$3" ]; then config_get "$2" "$3" "$4"; else config_get "$2" TYPE "$4"; fi
	)
}

# Require-User: from the control file (user[=uid]:group[=gid]).
add_group_and_user() {  # add_group_and_user PKGNAME
	local spec user uid group gid
	spec=$(sed -n 's/^Require-User: *//p' "/usr/lib/opkg/info/$1.control" 2>/dev/null)
	for spec in $spec; do
		user=${spec%%:*}; group=${spec#*:}; [ "$group" = "$spec" ] && group=
		uid=${user#*=}; [ "$uid" = "$user" ] && uid=; user=${user%%=*}
		gid=${group#*=}; [ "$gid" = "$group" ] && gid=; group=${group%%=*}
		if [ -n "$group" ] && ! grep -q "^$group:" /etc/group; then
			echo "$group:x:${gid:-$((32768 + $(wc -l < /etc/group)))}:" >> /etc/group
		fi
		if [ -n "$user" ] && ! grep -q "^$user:" /etc/passwd; then
			gid=$(grep "^${group:-$user}:" /etc/group | cut -d: -f3)
			echo "$user:x:${uid:-$((32768 + $(wc -l < /etc/passwd)))}:${gid:-65534}:$user:/var/run/$user:/bin/false" >> /etc/passwd
		fi
	done
}

default_postinst() {  # default_postinst SCRIPT [ARGS]
	local pkgname filelist i ret=0
	pkgname=$(basename "${1%.*}")
	filelist="/usr/lib/opkg/info/$pkgname.list"
	[ -f "$filelist" ] && add_group_and_user "$pkgname"
	if [ -z "$IPKG_INSTROOT" ]; then
		if grep -q "^/etc/uci-defaults/" "$filelist" 2>/dev/null; then
			mkdir -p /tmp/.uci
			for i in $(grep "^/etc/uci-defaults/" "$filelist"); do
				( [ -f "$i" ] && cd "$(dirname "$i")" && . "$i" ) && rm -f "$i"
			done
			# OpenWrt runs `uci commit` here; this image has no uci (and no
			# pending uci changes, since no uci binary could have made any).
		fi
		rm -f /tmp/luci-indexcache*
	fi
	if [ -f "/usr/lib/opkg/info/$pkgname.postinst-pkg" ]; then
		( . "/usr/lib/opkg/info/$pkgname.postinst-pkg" )
		ret=$?
	fi
	for i in $(grep "^/etc/init.d/" "$filelist" 2>/dev/null); do
		if [ -n "$IPKG_INSTROOT" ]; then
			/bin/sh "$IPKG_INSTROOT/etc/rc.common" "$IPKG_INSTROOT$i" enable
		else
			[ "$PKG_UPGRADE" = 1 ] || "$i" enable
			"$i" start
		fi
	done
	return $ret
}

default_prerm() {  # default_prerm SCRIPT [ARGS]
	local pkgname filelist i ret=0
	pkgname=$(basename "${1%.*}")
	filelist="/usr/lib/opkg/info/$pkgname.list"
	if [ -f "/usr/lib/opkg/info/$pkgname.prerm-pkg" ]; then
		( . "/usr/lib/opkg/info/$pkgname.prerm-pkg" )
		ret=$?
	fi
	for i in $(grep "^/etc/init.d/" "$filelist" 2>/dev/null); do
		if [ -n "$IPKG_INSTROOT" ]; then
			/bin/sh "$IPKG_INSTROOT/etc/rc.common" "$IPKG_INSTROOT$i" disable
		else
			[ "$PKG_UPGRADE" = 1 ] || "$i" disable
			"$i" stop
		fi
	done
	return $ret
}

include() {  # include DIR: source DIR/*.sh
	local f
	for f in "$1"/*.sh; do [ -f "$f" ] && . "$f"; done
}
