#!/usr/bin/env bash
# Syscalls per echoed message, counted by `strace -c -f` on a release `saythat serve` while
# `saythat load` sends a fixed number of messages (50 connections, ping-pong, 64 bytes; then line
# framing with 16 messages in flight). strace slows the server a lot: the counts, not the times,
# are the figure.
#
#   scripts/syscalls.sh [MESSAGES]      (default 100000)
#
# Loopback only; the servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-100000}
command -v strace >/dev/null || { echo "syscalls.sh needs strace (apt-get install strace)" >&2; exit 1; }

cargo build --release --quiet
bin=./target/release/saythat
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# count NAME FRAMING PIPELINE: one server, one traced load run; prints a result line.
count() {
  local name=$1 framing=$2 pipeline=$3
  "$bin" serve --listen 127.0.0.1:0 --framing "$framing" 2>"$work/server.log" &
  server=$!
  for _ in $(seq 100); do grep -q 'listening on' "$work/server.log" && break; sleep 0.05; done
  local addr
  addr=$(grep -o 'listening on [^ ]*' "$work/server.log" | head -1 | cut -d' ' -f3)
  strace -f -c -o "$work/strace.txt" -p "$server" 2>/dev/null &
  local tracer=$!
  sleep 0.5 # strace attaches asynchronously
  "$bin" load --addr "$addr" --conns 50 --size 64 --framing "$framing" --pipeline "$pipeline" \
    --messages "$messages" --duration 300 --warmup 0 --timeout 30 --json >"$work/load.json"
  kill -INT "$tracer"; wait "$tracer" || true
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  python3 - "$name" "$work/strace.txt" "$work/load.json" <<'PY'
import json, sys
name, trace, report = sys.argv[1:]
calls = {}
for line in open(trace):
    fields = line.split()
    if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
        calls[fields[-1]] = int(fields[3])
messages = json.load(open(report))["messages"]
total = sum(calls.values())
top = ", ".join(f"{n} {c / messages:.3f}" for n, c in sorted(calls.items(), key=lambda kv: -kv[1])[:4])
print(f"{name:<28} {messages:>8} msgs  {total / messages:6.3f} syscalls/msg  ({top})")
PY
}

echo "syscalls per message, counted by strace over $messages messages, 50 connections, 64 B:"
count "chunk, ping-pong" chunk 1
count "line, 16 in flight" line 16
