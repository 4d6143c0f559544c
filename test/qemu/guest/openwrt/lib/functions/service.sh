# shellcheck shell=dash
# /lib/functions/service.sh — STAND-IN FOR THE QEMU TEST IMAGE ONLY (never packaged).
# rc.common sources it; OpenWrt's holds start-stop-daemon helpers
# (service_start, service_stop, ...) for scripts without procd. ugate's init
# script uses procd, so nothing is needed here.
:
