#!/bin/sh
# shellcheck shell=dash
# uci-edit.sh FILE COMMAND... — change a uci file the way `uci ...; uci commit`
# would, for the QEMU test image, which has no uci binary. Commands:
#   set SECTION.OPTION=VALUE    replace the option (a list becomes one option)
#   set SECTION=TYPE            add a named section (or retype it)
#   add_list SECTION.OPTION=VALUE
#   delete SECTION.OPTION
# SECTION is a section name or @TYPE[N] (N from 0; -1 is the last one).
# Lines it writes are in `uci export` form (tab, option/list, single-quoted
# value). Unlike `uci commit` it leaves comments and the other lines as they
# are, like an edit with sed would.
set -eu

[ $# -eq 3 ] || { echo "usage: uci-edit.sh FILE set|add_list|delete ARG" >&2; exit 2; }
file=$1 cmd=$2 arg=$3
[ -f "$file" ] || { echo "uci-edit.sh: $file: no such file" >&2; exit 1; }

case "$cmd" in
	set | add_list)
		key=${arg%%=*}
		value=${arg#*=}
		[ "$key" != "$arg" ] || { echo "uci-edit.sh: $cmd needs KEY=VALUE, got '$arg'" >&2; exit 2; }
		;;
	delete) key=$arg value= ;;
	*) echo "uci-edit.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
sec=${key%%.*}
opt=
[ "$sec" = "$key" ] || opt=${key#*.}
[ -n "$opt" ] || [ "$cmd" = set ] || { echo "uci-edit.sh: $cmd needs SECTION.OPTION" >&2; exit 2; }

tmp=$file.uci-edit.$$
awk -v cmd="$cmd" -v sec="$sec" -v opt="$opt" -v value="$value" '
function q(s) { gsub(/\047/, "\047\\\047\047", s); return "\047" s "\047" }
function word(   c, out, quote) {
	out = ""
	while (pos <= length(line)) {
		c = substr(line, pos, 1)
		if (c == " " || c == "\t" || c == "#") break
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
		if (c == "\\") pos++
		out = out substr(line, pos, 1); pos++
	}
	return out
}
function parse(   n) {
	pos = 1; bad = 0; n = 0
	while (pos <= length(line) && (substr(line, pos, 1) == " " || substr(line, pos, 1) == "\t")) pos++
	while (pos <= length(line) && substr(line, pos, 1) != "#") {
		w[++n] = word()
		if (bad) { print FILENAME ":" FNR ": cannot parse: " line > "/dev/stderr"; exit 3 }
		while (pos <= length(line) && (substr(line, pos, 1) == " " || substr(line, pos, 1) == "\t")) pos++
	}
	if (n > 0) {
		if (w[1] == "c") w[1] = "config"; else if (w[1] == "o") w[1] = "option"; else if (w[1] == "l") w[1] = "list"
	}
	return n
}
# Pass 1: sections (type, name, last statement line) and the lines of OPTION.
NR == FNR {
	line = $0; n = parse()
	if (n == 0) next
	if (w[1] == "config") {
		ns++; stype[ns] = w[2]; sname[ns] = (n >= 3 ? w[3] : ""); last[ns] = FNR
		count[w[2]]++; sidx[ns] = count[w[2]] - 1
		next
	}
	if (ns > 0 && (w[1] == "option" || w[1] == "list")) {
		last[ns] = FNR
		if (w[2] == opt) { hit[ns, FNR] = w[1] }
	}
	next
}
FNR == 1 {
	# Which section? A name, or @type[N].
	target = 0
	if (sec ~ /^@[A-Za-z0-9_]+\[-?[0-9]+\]$/) {
		t = sec; sub(/^@/, "", t); i = t; sub(/\[.*/, "", t); sub(/^[^[]*\[/, "", i); sub(/\]$/, "", i); i = i + 0
		if (i < 0) i = count[t] + i
		for (k = 1; k <= ns; k++) if (stype[k] == t && sidx[k] == i) target = k
	} else {
		for (k = 1; k <= ns; k++) if (sname[k] == sec) target = k
	}
	if (cmd == "set" && opt == "") {
		if (target == 0) { append_section = 1 }
		else { retype = target }
	} else if (target == 0) {
		print "uci-edit.sh: no section " sec > "/dev/stderr"; exit 4
	}
	first = 0
	for (k = 1; k <= ns; k++) if (k == target) for (l = 1; l <= last[k]; l++) if ((k, l) in hit) { if (!first) first = l; lastopt = l }
	sect = 0
}
{
	line = $0; n = parse()
	if (n > 0 && w[1] == "config") sect++
	out = $0; skip = 0
	if (retype && sect == retype && n > 0 && w[1] == "config" && w[2] != value) {
		out = "config " value (n >= 3 ? " " q(w[3]) : "")
	}
	if (target && sect == target && (target, FNR) in hit) {
		if (cmd == "delete") skip = 1
		else if (cmd == "set") { if (FNR == first) out = "\toption " opt " " q(value); else skip = 1 }
		else if (cmd == "add_list" && hit[target, FNR] == "option") out = "\tlist " opt " " q(w[3])
	}
	if (!skip) print out
	if (target && sect == target && FNR == last[target]) {
		if (cmd == "set" && opt != "" && !first) print "\toption " opt " " q(value)
		if (cmd == "add_list") print "\tlist " opt " " q(value)
	}
}
END {
	if (append_section) { print ""; print "config " value " " q(sec) }
}' "$file" "$file" > "$tmp" || { rc=$?; rm -f "$tmp"; exit "$rc"; }
cat "$tmp" > "$file"
rm -f "$tmp"
