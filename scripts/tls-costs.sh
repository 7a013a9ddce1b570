#!/usr/bin/env bash
# What one message costs a server over TLS once the handshakes are done: syscalls (strace -c),
# user-space instructions (valgrind's callgrind) and heap allocations (valgrind's dhat), for
# saythat (`serve --tls-cert`) and the hyper/tokio + tokio-rustls peer
# (examples/hyper_rustls_peer.rs), at 64 B and 1024 B chunk ping-pong and keep-alive HTTPS GET of
# a 64-byte path, 50 connections, TLS 1.3, an ECDSA P-256 test certificate (scripts/tls-cert.sh).
#
#   scripts/tls-costs.sh [--only syscalls|instructions|allocations] [MESSAGES]
#
# Each load run opens its 50 connections afresh (50 handshakes), so each figure is a difference:
# the same server measured over MESSAGES and over 3 x MESSAGES messages, on new connections both
# times; the handshakes (and the server's start and end, for dhat) cancel out and what is left,
# divided by 2 x MESSAGES, is the steady state. MESSAGES defaults to 2000 (valgrind runs the
# servers some 50 times slower; the counts are exact, not timed); syscalls use 20 x MESSAGES.
# dhat counts every heap block the server allocated (its "Total: ... in N blocks"); saythat's
# plain path is checked for 0 per message by `cargo test --test allocations` (a counting
# allocator), which has no TLS point.
#
# Needs strace and valgrind (apt-get install strace valgrind), openssl for the certificate, and a
# saythat with `load --tls` (SAYTHAT_LOAD_BIN may name another build of it). Loopback only;
# bounded (every load run has a timeout); servers are stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
only=$(only_kind "syscalls instructions allocations" "$@") || exit 2
[ -z "$only" ] || shift 2
messages=${1:-2000}
[[ $messages =~ ^[0-9]+$ ]] && [ "$messages" -ge 100 ] && [ "$messages" -le 1000000 ] || {
  echo "tls-costs: MESSAGES is a whole number from 100 to 1000000" >&2; exit 2; }
for tool in strace valgrind openssl; do
  command -v "$tool" >/dev/null || { echo "tls-costs: needs $tool (apt-get install $tool)" >&2; exit 2; }
done

cargo build --release --quiet --bin saythat --example hyper_rustls_peer
bin=$(release_dir)/saythat
load_bin=${SAYTHAT_LOAD_BIN:-$bin}
"$load_bin" load --help | grep -q -- '--tls-ca' || {
  echo "tls-costs: $load_bin has no load --tls; build one that has (SAYTHAT_LOAD_BIN)" >&2; exit 2; }
work=$(mktemp -d)
TLS_DIR=$work/tls
scripts/tls-cert.sh "$TLS_DIR" >/dev/null
server=
tracer=
cleanup() {
  [ -n "$tracer" ] && kill -INT "$tracer" 2>/dev/null
  [ -n "$server" ] && kill "$server" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# load ADDR FRAMING SIZE METHOD N: N messages on 50 fresh TLS connections; the report to load.json.
load() {
  local how=()
  [ "$4" != - ] && how=(--method "$4")
  "$load_bin" load --addr "$1" --tls --tls-ca "$TLS_DIR/ca.pem" --conns 50 --size "$3" \
    --framing "${2#tls_}" "${how[@]}" --messages "$5" --duration 600 --warmup 0 --timeout 60 \
    --json >"$work/load.json"
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(r["errors"] != 0)' \
    "$work/load.json" || { echo "tls-costs: the load run had errors:" >&2; cat "$work/load.json" >&2; exit 1; }
}

# start PREFIX...: runs the server (SERVER_COMMAND) behind PREFIX (a tool); sets server and addr.
start() {
  "$@" "${SERVER_COMMAND[@]}" 2>"$work/server.log" &
  server=$!
  addr=$(listen_addr "$work/server.log" 60)
}
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=; }

# syscalls NAME FRAMING SIZE METHOD: strace -c over N and 3N messages.
syscalls() {
  local n=$((messages * 20)) runs=() m
  server_command "$1" "$2"
  start
  for m in "$n" $((3 * n)); do
    strace -f -c -o "$work/strace.$m" -p "$server" 2>/dev/null &
    tracer=$!
    sleep 0.5 # strace attaches asynchronously
    load "$addr" "$2" "$3" "$4" "$m"
    kill -INT "$tracer"; wait "$tracer" || true; tracer=
    runs+=("$work/strace.$m")
  done
  stop
  python3 - "$1" "$2 $3 B $4" "$n" "${runs[@]}" <<'PY'
import sys
name, case, n, small, big = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def calls(path):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            out[f[-1]] = int(f[3])
    return out
a, b = calls(small), calls(big)
diff = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
top = ", ".join(f"{k} {v / (2 * n):.3f}" for k, v in sorted(diff.items(), key=lambda kv: -kv[1])[:3])
print(f"syscalls     {case:<22} {name:<8} {sum(diff.values()) / (2 * n):8.3f}  ({top})")
PY
}

# instructions NAME FRAMING SIZE METHOD: callgrind, zeroed before each of the two runs.
instructions() {
  local file=$work/callgrind.out dumps=() m
  server_command "$1" "$2"
  start valgrind --tool=callgrind --callgrind-out-file="$file"
  load "$addr" "$2" "$3" "$4" 200 # warm-up: buffers reach their working size
  for m in "$messages" $((3 * messages)); do
    callgrind_control --zero "$server" >/dev/null 2>&1
    load "$addr" "$2" "$3" "$4" "$m"
    callgrind_control --dump "$server" >/dev/null 2>&1
    dumps+=("$(ls -t "$file".* | head -1)")
  done
  stop
  python3 - "$1" "$2 $3 B $4" "$messages" "${dumps[@]}" <<'PY'
import sys
name, case, n, small, big = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def total(path):
    return next(int(l.split()[1]) for l in open(path) if l.startswith(("summary:", "totals:")))
print(f"instructions {case:<22} {name:<8} {(total(big) - total(small)) / (2 * n):8.0f}")
PY
}

# allocations NAME FRAMING SIZE METHOD: dhat's total blocks, two servers, N and 3N messages.
allocations() {
  local m logs=()
  server_command "$1" "$2"
  for m in "$messages" $((3 * messages)); do
    start valgrind --tool=dhat --dhat-out-file="$work/dhat.$m.json"
    load "$addr" "$2" "$3" "$4" 200
    load "$addr" "$2" "$3" "$4" "$m"
    stop
    cp "$work/server.log" "$work/dhat.$m.log"
    logs+=("$work/dhat.$m.log")
  done
  python3 - "$1" "$2 $3 B $4" "$messages" "${logs[@]}" <<'PY'
import re, sys
name, case, n, small, big = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def blocks(path):
    m = re.search(r"Total:\s+([\d,]+) bytes in ([\d,]+) blocks", open(path).read())
    if not m:
        sys.exit(f"tls-costs: no dhat total in {path}")
    return int(m.group(2).replace(",", "")), int(m.group(1).replace(",", ""))
(a, ab), (b, bb) = blocks(small), blocks(big)
print(f"allocations  {case:<22} {name:<8} {(b - a) / (2 * n):8.3f}  ({(bb - ab) / (2 * n):.0f} bytes)")
PY
}

points=("tls_chunk 64 -" "tls_chunk 1024 -" "tls_http 64 get")
case $only in
  '') kinds=(syscalls instructions allocations) ;;
  *) kinds=("$only") ;;
esac
echo "tls-costs: per message after the handshakes, 50 connections; N = $messages (syscalls: $((messages * 20)))"
for kind in "${kinds[@]}"; do
  for point in "${points[@]}"; do
    for name in saythat rustls; do
      # shellcheck disable=SC2086
      "$kind" "$name" $point
    done
  done
done
