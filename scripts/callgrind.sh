#!/usr/bin/env bash
# User-space instructions per echoed message, counted by valgrind's callgrind: repeatable on a
# noisy machine, so a regression in the hot path shows as a number. Runs a release server under
# callgrind (saythat, then the tokio peer of examples/tokio_peer.rs for comparison), warms it up,
# zeroes the counters, sends a fixed number of messages with `saythat load` (50 connections:
# ping-pong at 64 and 1024 bytes, line framing with 16 in flight), and divides. Then HTTP
# (`--framing http`) against the hyper peer of examples/hyper_peer.rs: keep-alive GET of a 64-byte
# path, one and 16 in flight, and a 64-byte POST. Then WebSocket (`--framing ws` against
# saythat's `--framing http`) against the tokio-tungstenite peer of examples/tungstenite_peer.rs:
# 64-byte binary messages, one and 16 in flight; the counted run's 50 upgrades (SHA-1, base64)
# are counted with its messages. Kernel time is not counted: see scripts/syscalls.sh for that side.
#
#   scripts/callgrind.sh [--only echo|http|ws] [MESSAGES]      (default 20000)
#
# Loopback only; the server is stopped on exit. Keeps the profiles in results/callgrind/ for
# `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
only=$(only_kind "echo http ws" "$@") || exit 2
[ -z "$only" ] || shift 2
messages=${1:-20000}
whole_number MESSAGES "$messages" "scripts/callgrind.sh [--only echo|http|ws] [MESSAGES]   (default 20000)"
command -v valgrind >/dev/null || { echo "callgrind.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --quiet --bin saythat --example tokio_peer --example hyper_peer \
  --example tungstenite_peer
bin=$(release_dir)/saythat
out=results/callgrind
mkdir -p "$out"
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# measure SERVER FRAMING SIZE PIPELINE [METHOD]; METHOD (get or post) is for http framing only.
measure() {
  local name=$1 framing=$2 size=$3 pipeline=$4 method=${5:-}
  local file="$out/callgrind.$name.$framing.$size.out"
  local case="$framing $size B x$pipeline" how=()
  if [ "$framing" = ws ]; then
    # Both WebSocket points have one size: the file names the pipeline too.
    file="$out/callgrind.$name.ws.$size.x$pipeline.out"
    case="ws binary $size B x$pipeline"
  fi
  if [ -n "$method" ]; then
    # Several HTTP points share a size: the file names the method and the pipeline too.
    file="$out/callgrind.$name.$framing-$method.$size.x$pipeline.out"
    case="$framing ${method^^} $size B x$pipeline"
    how=(--method "$method")
  fi
  server_command "$name" "$framing"
  rm -f "$file"*
  valgrind --tool=callgrind --callgrind-out-file="$file" "${SERVER_COMMAND[@]}" 2>"$work/server.log" &
  server=$!
  local addr
  addr=$(listen_addr "$work/server.log" 60)
  local load=("$bin" load --addr "$addr" --conns 50 --size "$size" --framing "$framing"
    --pipeline "$pipeline" "${how[@]}" --duration 600 --warmup 0 --timeout 60 --json)
  "${load[@]}" --messages 2000 >/dev/null # warm-up: buffers reach their working size
  callgrind_control --zero "$server" >/dev/null 2>&1
  "${load[@]}" --messages "$messages" >"$work/load.json"
  callgrind_control --dump "$server" >/dev/null 2>&1
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  # The dump taken after zeroing holds exactly the measured messages.
  local dump
  dump=$(ls -t "$file".* 2>/dev/null | grep -v '\.0*$' | head -1 || true)
  [ -n "$dump" ] || dump=$(ls -t "$file"* | head -1)
  python3 - "$name" "$case" "$dump" "$work/load.json" <<'PY'
import json, sys
name, case, dump, report = sys.argv[1:]
total = next(int(line.split()[1]) for line in open(dump) if line.startswith(("summary:", "totals:")))
messages = json.load(open(report))["messages"]
print(f"{case:<20} {name:<11} {total / messages:8.0f}  ({dump})")
PY
}

echo "user-space instructions per message (callgrind) over $messages messages, 50 connections:"
per_message_points "$only"
for point in "${points[@]}"; do
  for server_name in saythat "$(peer_of "${point%% *}")"; do
    # shellcheck disable=SC2086
    measure "$server_name" $point
  done
done
