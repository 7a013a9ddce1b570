#!/usr/bin/env bash
# Server memory per idle connection: starts a release `saythat serve` (or, with --peer, the tokio
# peer of examples/tokio_peer.rs) on a free loopback port, opens N connections (default 10000) that
# each send one message and check its answer, then hold still; prints the server's RSS growth per
# connection and its open descriptors.
#
#   scripts/idle_memory.sh [--peer] [CONNECTIONS]
#
# Loopback only; bounded (it closes everything and stops the server when done, or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
server=saythat
if [ "${1:-}" = --peer ]; then
  server=tokio
  shift
fi
server_command "$server" chunk
conns=${1:-10000}

cargo build --release --quiet --bin saythat --example tokio_peer
ulimit -n "$(ulimit -Hn)"
log=$(mktemp)
"${SERVER_COMMAND[@]}" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
addr=$(listen_addr "$log")

python3 - "$addr" "$conns" "$server" <<'PY'
import resource, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
conns, pid = int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

def rss_kib():
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

def fds():
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))

# Warm the server's one-off allocations (event buffer, pools) before the baseline.
warm = socket.create_connection((host, int(port)))
warm.sendall(b"warm"); warm.recv(64); warm.close()
time.sleep(0.2)
base = rss_kib()
sockets, wrong = [], 0
for i in range(conns):
    s = socket.create_connection((host, int(port)))
    message = b"hello %d" % i
    s.sendall(message)
    expected = b"You say that " + message
    got = b""
    while len(got) < len(expected):
        chunk = s.recv(1024)
        if not chunk:
            break
        got += chunk
    wrong += got != expected
    sockets.append(s)
time.sleep(0.5)
held = rss_kib()
print(f"connections held        {conns}")
print(f"wrong answers           {wrong}")
print(f"server RSS before       {base} KiB")
print(f"server RSS with them    {held} KiB")
print(f"RSS per idle connection {(held - base) * 1024 / conns:.0f} bytes")
print(f"server open fds         {fds()}")
for s in sockets:
    s.close()
sys.exit(1 if wrong else 0)
PY
