#!/usr/bin/env bash
# Server RSS per idle TLS connection: starts a release saythat with a test certificate
# (scripts/tls-cert.sh), opens N TLS connections with Python's ssl module (TLS 1.3, ECDSA P-256),
# echoes a word on each so its buffers have been used, holds them, and prints the RSS it grew by,
# divided by N. Until `saythat load --tls` exists, Python is the client.
#
#   scripts/tls-idle-memory.sh [N]      (default 10000; needs N + 100 descriptors: ulimit -n)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
n=${1:-10000}
command -v python3 >/dev/null || { echo "tls-idle-memory.sh needs python3" >&2; exit 1; }
cargo build --release --quiet --bin saythat
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
scripts/tls-cert.sh "$work/tls" >/dev/null
ulimit -n $((n + 200)) 2>/dev/null || { echo "cannot raise ulimit -n to $((n + 200))" >&2; exit 1; }
"$(release_dir)/saythat" serve --listen 127.0.0.1:0 --tls-cert "$work/tls/server.pem" \
  --tls-key "$work/tls/server.key" 2>"$work/server.log" &
server=$!
addr=$(listen_addr "$work/server.log")
python3 - "$addr" "$n" "$server" "$work/tls/ca.pem" <<'PY'
import socket, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, pid, ca = int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
ctx = ssl.create_default_context(cafile=ca)
def connect():
    s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname="localhost")
    s.sendall(b"hi")
    s.recv(100)
    return s
held = [connect()]  # the first connection's setup is not per connection
time.sleep(0.3)
before = rss()
held += [connect() for _ in range(n)]
time.sleep(0.5)
after = rss()
print(f"{n} idle TLS connections: server RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB, "
      f"{(after - before) / n:,.0f} B per connection")
PY
