#!/bin/sh
# shellcheck shell=dash
# opkg-install.sh FILE.ipk — install an .ipk the way opkg (opkg-lede) does,
# for the QEMU test image, which has no opkg:
#   1. the outer file is a gzip'd tar (an `ar` .ipk is "Malformed package
#      file") holding ./debian-binary (2.0), ./data.tar.gz, ./control.tar.gz;
#   2. control: Package and Version required, Architecture one of this
#      router's (all, noarch, x86_64);
#   3. preinst install (if any); data.tar.gz unpacked into /; the control
#      files kept as /usr/lib/opkg/info/PKG.*, the installed files listed in
#      PKG.list, an entry added to /usr/lib/opkg/status;
#   4. `postinst configure`, run as /bin/sh -c "SCRIPT configure" with
#      PKG_ROOT=/ and IPKG_INSTROOT unset (not an offline root).
# A conffile that already exists and differs is kept; the package's copy goes
# next to it as FILE-opkg (opkg's rule). Prints "@@ key=value" result lines.
set -u
ARCHS="all noarch x86_64"
ipk=${1:?usage: opkg-install.sh FILE.ipk}
say() { echo "@@ $*"; }
fail() { say "ipk-error=$*"; exit 1; }

[ -f "$ipk" ] || fail "$ipk: no such file"
magic=$(hexdump -n 2 -e '2/1 "%02x"' "$ipk")
[ "$magic" = 1f8b ] || fail "$ipk: not a gzip'd tar (starts with $magic): opkg says Malformed package file"
w=/tmp/opkg-install.$$
rm -rf "$w" && mkdir -p "$w/outer" "$w/control"
members=$(tar -tzf "$ipk" 2>&1) || fail "outer tar: $members"
say "ipk-members=$(echo "$members" | tr '\n' ' ' | sed 's/ $//')"
tar -xzf "$ipk" -C "$w/outer" || fail "cannot unpack the outer tar"
[ "$(cat "$w/outer/debian-binary" 2>/dev/null)" = 2.0 ] || fail "debian-binary is not 2.0"
[ -f "$w/outer/control.tar.gz" ] || fail "no control.tar.gz"
[ -f "$w/outer/data.tar.gz" ] || fail "no data.tar.gz"
tar -xzf "$w/outer/control.tar.gz" -C "$w/control" || fail "cannot unpack control.tar.gz"
ctl=$w/control/control
[ -f "$ctl" ] || fail "control.tar.gz has no ./control"
field() { sed -n "s/^$1: *//p" "$ctl" | head -n 1; }
pkg=$(field Package) ver=$(field Version) arch=$(field Architecture)
[ -n "$pkg" ] || fail "control has no Package"
[ -n "$ver" ] || fail "control has no Version"
case " $ARCHS " in *" $arch "*) ;; *) fail "$pkg: incompatible architecture '$arch' (router: $ARCHS)" ;; esac
say "ipk-package=$pkg" && say "ipk-version=$ver" && say "ipk-arch=$arch"

info=/usr/lib/opkg/info
mkdir -p "$info"
if [ -x "$w/control/preinst" ]; then
	env -u IPKG_INSTROOT PKG_ROOT=/ /bin/sh -c "$w/control/preinst install" || fail "preinst returned $?"
fi

# Conffiles that exist and differ stay; the package's copy goes to FILE-opkg.
keep=
if [ -f "$w/control/conffiles" ]; then
	while read -r f _; do
		[ -f "$f" ] || continue
		keep="$keep $f"
		cp -p "$f" "$w/keep.$(echo "$f" | tr / _)"
	done < "$w/control/conffiles"
fi
tar -xzf "$w/outer/data.tar.gz" -C / || fail "cannot unpack data.tar.gz into /"
for f in $keep; do
	if ! cmp -s "$f" "$w/keep.$(echo "$f" | tr / _)"; then
		mv "$f" "$f-opkg"
		cp -p "$w/keep.$(echo "$f" | tr / _)" "$f"
		say "ipk-conffile-kept=$f"
	fi
done
tar -tzf "$w/outer/data.tar.gz" | sed -n 's#^\./#/#p' | grep -v '/$' | grep -v '^/$' > "$info/$pkg.list"
say "ipk-files=$(tr '\n' ' ' < "$info/$pkg.list" | sed 's/ $//')"
for f in "$w/control"/*; do
	cp -p "$f" "$info/$pkg.${f##*/}"
done
{
	echo "Package: $pkg"
	echo "Version: $ver"
	echo "Status: install user installed"
	echo "Architecture: $arch"
	if [ -f "$w/control/conffiles" ]; then
		echo "Conffiles:"
		while read -r f _; do echo " $f $(md5sum < "$f" | cut -d' ' -f1)"; done < "$w/control/conffiles"
	fi
	echo "Installed-Time: $(date +%s)"
	echo
} >> /usr/lib/opkg/status

rc=0
if [ -f "$info/$pkg.postinst" ]; then
	[ -x "$info/$pkg.postinst" ] || say "ipk-warning=postinst is not executable"
	env -u IPKG_INSTROOT PKG_ROOT=/ PKG_UPGRADE=0 /bin/sh -c "$info/$pkg.postinst configure" > "$w/postinst.out" 2>&1
	rc=$?
	while IFS= read -r line; do say "postinst-output=$line"; done < "$w/postinst.out"
fi
say "ipk-postinst-exit=$rc"
rm -rf "$w"
say "ipk-installed=$pkg $ver"
exit 0
