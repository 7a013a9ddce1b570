#!/usr/bin/env bash
# Syscalls per echoed message, counted by `strace -c -f` on the server while `saythat load` sends
# a fixed number of messages over 50 connections: ping-pong at 64 and 1024 bytes, and line
# framing with 16 messages in flight, saythat and the tokio peer (examples/tokio_peer.rs) alike;
# then HTTP (`--framing http`): keep-alive GET of a 64-byte path one and 16 in flight, and a
# 64-byte POST, saythat and the hyper peer (examples/hyper_peer.rs) alike; then WebSocket
# (`--framing ws` against saythat's `--framing http`): 64-byte binary messages one and 16 in
# flight, saythat and the tokio-tungstenite peer (examples/tungstenite_peer.rs) alike. The
# upgrades are counted too, 50 in all: a few hundred syscalls, under 0.003 per message at the
# default count. strace slows the servers a lot: the counts, not the times, are the figure.
#
#   scripts/syscalls.sh [--only echo|http|ws] [MESSAGES]      (default 100000)
#
# Loopback only; the servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
only=$(only_kind "echo http ws" "$@") || exit 2
[ -z "$only" ] || shift 2
messages=${1:-100000}
whole_number MESSAGES "$messages" "scripts/syscalls.sh [--only echo|http|ws] [MESSAGES]   (default 100000)"
command -v strace >/dev/null || { echo "syscalls.sh needs strace (apt-get install strace)" >&2; exit 1; }

cargo build --release --quiet --bin saythat --example tokio_peer --example hyper_peer \
  --example tungstenite_peer
bin=$(release_dir)/saythat
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# count SERVER FRAMING SIZE PIPELINE [METHOD]: one server, one traced load run; prints a result
# line. METHOD (get or post) is for http framing only.
count() {
  local name=$1 framing=$2 size=$3 pipeline=$4 method=${5:-}
  local case="$framing $size B x$pipeline" how=()
  [ "$framing" = ws ] && case="ws binary $size B x$pipeline"
  if [ -n "$method" ]; then
    case="$framing ${method^^} $size B x$pipeline"
    how=(--method "$method")
  fi
  server_command "$name" "$framing"
  "${SERVER_COMMAND[@]}" 2>"$work/server.log" &
  server=$!
  local addr
  addr=$(listen_addr "$work/server.log")
  strace -f -c -o "$work/strace.txt" -p "$server" 2>/dev/null &
  local tracer=$!
  sleep 0.5 # strace attaches asynchronously
  "$bin" load --addr "$addr" --conns 50 --size "$size" --framing "$framing" --pipeline "$pipeline" \
    "${how[@]}" --messages "$messages" --duration 300 --warmup 0 --timeout 30 --json >"$work/load.json"
  kill -INT "$tracer"; wait "$tracer" || true
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  python3 - "$name" "$case" "$work/strace.txt" "$work/load.json" <<'PY'
import json, sys
name, case, trace, report = sys.argv[1:]
calls = {}
for line in open(trace):
    fields = line.split()
    if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
        calls[fields[-1]] = int(fields[3])
messages = json.load(open(report))["messages"]
total = sum(calls.values())
top = ", ".join(f"{n} {c / messages:.3f}" for n, c in sorted(calls.items(), key=lambda kv: -kv[1])[:4])
print(f"{case:<20} {name:<11} {total / messages:6.3f}  ({top})")
PY
}

echo "syscalls per message, strace over $messages messages, 50 connections:"
per_message_points "$only"
for point in "${points[@]}"; do
  for server_name in saythat "$(peer_of "${point%% *}")"; do
    # shellcheck disable=SC2086
    count "$server_name" $point
  done
done
