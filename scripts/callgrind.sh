#!/usr/bin/env bash
# User-space instructions per echoed message, counted by valgrind's callgrind: repeatable on a
# noisy machine, so a regression in the hot path shows as a number. Runs a release
# `saythat serve` under callgrind, warms it up, zeroes the counters, sends a fixed number of
# messages with `saythat load` (50 connections, ping-pong, 64 bytes; then line framing with 16 in
# flight), and divides. Kernel time is not counted: see scripts/syscalls.sh for that side.
#
#   scripts/callgrind.sh [MESSAGES]      (default 20000)
#
# Loopback only; the server is stopped on exit. Keeps the profiles in results/callgrind/ for
# `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-20000}
command -v valgrind >/dev/null || { echo "callgrind.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --quiet
bin=./target/release/saythat
out=results/callgrind
mkdir -p "$out"
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# measure NAME FRAMING PIPELINE
measure() {
  local name=$1 framing=$2 pipeline=$3 file="$out/callgrind.$2.out"
  rm -f "$file"*
  valgrind --tool=callgrind --callgrind-out-file="$file" \
    "$bin" serve --listen 127.0.0.1:0 --framing "$framing" 2>"$work/server.log" &
  server=$!
  for _ in $(seq 600); do grep -q 'listening on' "$work/server.log" && break; sleep 0.1; done
  local addr
  addr=$(grep -o 'listening on [^ ]*' "$work/server.log" | head -1 | cut -d' ' -f3)
  local load=("$bin" load --addr "$addr" --conns 50 --size 64 --framing "$framing"
    --pipeline "$pipeline" --duration 600 --warmup 0 --timeout 60 --json)
  "${load[@]}" --messages 2000 >/dev/null # warm-up: buffers reach their working size
  callgrind_control --zero "$server" >/dev/null 2>&1
  "${load[@]}" --messages "$messages" >"$work/load.json"
  callgrind_control --dump "$server" >/dev/null 2>&1
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  # The dump taken after zeroing holds exactly the measured messages.
  local dump
  dump=$(ls -t "$file".* 2>/dev/null | grep -v '\.0*$' | head -1 || true)
  [ -n "$dump" ] || dump=$(ls -t "$file"* | head -1)
  python3 - "$name" "$dump" "$work/load.json" <<'PY'
import json, sys
name, dump, report = sys.argv[1:]
total = next(int(line.split()[1]) for line in open(dump) if line.startswith(("summary:", "totals:")))
messages = json.load(open(report))["messages"]
print(f"{name:<22} {messages:>7} msgs  {total / messages:8.0f} instructions/msg  ({dump})")
PY
}

echo "user-space instructions per message (callgrind), 50 connections, 64 B:"
measure "chunk, ping-pong" chunk 1
measure "line, 16 in flight" line 16
