#!/bin/sh
# shellcheck shell=dash
# Run by `nc -l -p 9999 -e` for the host's one connection: the host writes
# one line (what it did), gets "ok" back.
IFS= read -r line
printf '%s\n' "$line" > /tmp/qtest-control
echo ok
