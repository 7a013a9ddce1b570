#!/usr/bin/env bash
# The port hand-over with --reuse-port under a churning load, against the naive restart. Starts
# a release `saythat serve` (A) on a free loopback port, puts `saythat load` through it (50
# connections, a new one every 5 messages), and after 2 s either
#   handover (default): starts B on the same port with --reuse-port, then sends A SIGTERM;
#   naive:              sends A SIGTERM, waits for it to exit, then starts B.
# Prints the load's connection and error lines and what each server served. With the hand-over
# the load sees 0 connect failures; with the naive restart, one per connection that tried to
# reconnect while no process listened.
#
#   scripts/handover.sh [handover|naive] [SECONDS]
#
# Loopback only; both servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
mode=${1:-handover}
seconds=${2:-6}
case $mode in handover | naive) ;; *) echo "handover: unknown mode $mode (handover or naive)" >&2; exit 2 ;; esac
[ "$seconds" -ge 4 ] 2>/dev/null || { echo "handover: give at least 4 seconds" >&2; exit 2; }

cargo build --release --quiet --bin saythat
bin=$(release_dir)/saythat
work=$(mktemp -d)
a= b=
cleanup() {
  for pid in $a $b; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

reuse=()
[ "$mode" = handover ] && reuse=(--reuse-port)
"$bin" serve --listen 127.0.0.1:0 --framing line "${reuse[@]}" 2>"$work/a.log" &
a=$!
addr=$(listen_addr "$work/a.log")
"$bin" load --addr "$addr" --framing line --conns 50 --reconnect 5 --warmup 0 \
  --duration "$seconds" >"$work/load.txt" 2>&1 &
load=$!
sleep 2
if [ "$mode" = handover ]; then
  "$bin" serve --listen "$addr" --framing line --reuse-port 2>"$work/b.log" &
  b=$!
  listen_addr "$work/b.log" >/dev/null
  kill -TERM "$a"
  wait "$a" || true
else
  kill -TERM "$a"
  wait "$a" || true
  "$bin" serve --listen "$addr" --framing line 2>"$work/b.log" &
  b=$!
  listen_addr "$work/b.log" >/dev/null
fi
a=
wait "$load" || true
kill -TERM "$b"
wait "$b" || true
b=
echo "== $mode on $addr, $(nproc) cores, Linux $(uname -r), net.ipv4.tcp_migrate_req=$(sysctl -n net.ipv4.tcp_migrate_req 2>/dev/null || echo n/a)"
grep -E '^ *(conns|errors)' "$work/load.txt" || cat "$work/load.txt"
for server in a b; do
  echo "$server: $(grep -o 'served [0-9]* connection(s)' "$work/$server.log" || echo 'no summary')"
done
