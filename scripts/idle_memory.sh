#!/usr/bin/env bash
# Server memory per idle connection: starts a release `saythat serve` (or, with --peer, the tokio
# peer of examples/tokio_peer.rs) on a free loopback port, opens N connections (default 10000) that
# each send one message and check its answer, then hold still; prints the server's RSS growth per
# connection and its open descriptors. With --framing http each connection makes one keep-alive
# GET and holds the connection open, as an idle HTTP client does between requests; with
# --split-head too, that GET carries a 3,000-byte head (a cookie) sent in two writes 1 ms apart,
# so it arrives in two reads, as a head over one MSS does on a real network (issue 16.5). With
# --framing ws (saythat's `--framing http`) each connection upgrades to a WebSocket, sends one
# masked binary message, checks the answer frame, and holds the WebSocket open. With --tls
# (chunk, line or http) the server has an ECDSA P-256 certificate from scripts/tls-cert.sh
# (`--tls-cert`), each connection makes a full handshake (Python's ssl, TLS 1.3) before its
# message and holds the TLS session open; with --peer too the server is the tokio chunk echo
# over tokio-rustls (examples/hyper_rustls_peer.rs; chunk or http). --tls needs openssl.
# SAYTHAT_BIN=PATH measures another build of saythat (e.g. main's, for a before/after).
#
#   scripts/idle_memory.sh [--peer] [--framing chunk|line|http|ws] [--split-head] [--tls]
#                          [CONNECTIONS]
#
# Loopback only; bounded (it closes everything and stops the server when done, or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
server=saythat
framing=chunk
split_head=0
tls=0
while [ $# -gt 0 ]; do
  case $1 in
    --peer) server=tokio; shift ;;
    --split-head) split_head=1; shift ;;
    --tls) tls=1; shift ;;
    --framing)
      [ $# -ge 2 ] || { echo "idle_memory: --framing needs chunk, line, http or ws" >&2; exit 2; }
      framing=$2; shift 2 ;;
    *) break ;;
  esac
done
case $framing in
  chunk | line) ;;
  http | ws)
    [ "$server" = saythat ] || {
      echo "idle_memory: the tokio peer speaks no HTTP or WebSocket" >&2; exit 2; } ;;
  *) echo "idle_memory: unknown framing $framing; give chunk, line, http or ws" >&2; exit 2 ;;
esac
if [ "$tls" = 1 ]; then
  [ "$framing" != ws ] || { echo "idle_memory: --tls takes chunk, line or http" >&2; exit 2; }
  [ "$server" = saythat ] || [ "$framing" != line ] || {
    echo "idle_memory: the rustls peer speaks chunk or http" >&2; exit 2; }
  [ "$server" = saythat ] || server=rustls
fi
if [ "$server" = rustls ]; then
  SERVER_COMMAND=("$(release_dir)/examples/hyper_rustls_peer" 127.0.0.1:0 'You say that ' "$framing")
else
  server_command "$server" "$framing"
fi
conns=${1:-10000}
whole_number CONNECTIONS "$conns" \
  "scripts/idle_memory.sh [--peer] [--framing chunk|line|http|ws] [--split-head] [--tls] [CONNECTIONS]"
[ "$split_head" = 0 ] || [ "$framing" = http ] || {
  echo "idle_memory: --split-head needs --framing http" >&2; exit 2; }

cargo build --release --quiet --bin saythat --example tokio_peer --example hyper_rustls_peer
if [ -n "${SAYTHAT_BIN:-}" ] && [ "$server" = saythat ]; then
  SERVER_COMMAND[0]=$SAYTHAT_BIN
fi
tls_dir=$(mktemp -d)
if [ "$tls" = 1 ]; then
  command -v openssl >/dev/null || { echo "idle_memory: --tls needs openssl (apt-get install openssl)" >&2; exit 2; }
  scripts/tls-cert.sh "$tls_dir" >/dev/null
  if [ "$server" = rustls ]; then
    SERVER_COMMAND+=("$tls_dir/server.pem" "$tls_dir/server.key")
  else
    SERVER_COMMAND+=(--tls-cert "$tls_dir/server.pem" --tls-key "$tls_dir/server.key")
  fi
fi
ulimit -n "$(ulimit -Hn)"
log=$(mktemp)
"${SERVER_COMMAND[@]}" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$log" "$tls_dir"' EXIT
addr=$(listen_addr "$log")

python3 - "$addr" "$conns" "$server" "$framing" "$split_head" "$tls" "$tls_dir/ca.pem" <<'PY'
import base64, hashlib, os, resource, socket, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
conns, pid, framing = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
split_head = sys.argv[5] == "1"
tls = ssl.create_default_context(cafile=sys.argv[7]) if sys.argv[6] == "1" else None

def connect():
    s = socket.create_connection((host, int(port)))
    return tls.wrap_socket(s, server_hostname=host) if tls else s
# A cookie long enough that the head passes one MSS, as real ones do.
COOKIE = b"X-Cookie: " + b"c" * 2950 + b"\r\n"
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

def rss_kib():
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

def fds():
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))

def read_until(s, done):
    """Reads until done(bytes so far); None if the server closed first."""
    got = b""
    while not done(got):
        chunk = s.recv(1024)
        if not chunk:
            return None
        got += chunk
    return got

def ws_exchange(s, message):
    """Upgrades, sends one masked binary message, checks the answer frame."""
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
              + key + b"\r\n\r\n")
    head = read_until(s, lambda got: b"\r\n\r\n" in got)
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    if head is None or not head.startswith(b"HTTP/1.1 101 ") or accept not in head:
        return False
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
    s.sendall(bytes([0x82, 0x80 | len(message)]) + mask + masked)
    payload = b"You say that " + message
    expected = bytes([0x82, len(payload)]) + payload
    rest = head.split(b"\r\n\r\n", 1)[1]
    got = rest + (read_until(s, lambda got: len(rest) + len(got) >= len(expected)) or b"")
    return got == expected

def exchange(s, i):
    """Sends message i; true if its answer came back right."""
    message = b"hello%d" % i
    if framing == "ws":
        return ws_exchange(s, message)
    if framing == "http":
        head = b"GET /" + message + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        if split_head:
            head += COOKIE + b"\r\n"
            s.sendall(head[:1400])
            time.sleep(0.001)
            s.sendall(head[1400:])
        else:
            s.sendall(head + b"\r\n")
        expected = b"You say that " + message
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < len(expected):
            chunk = s.recv(1024)
            if not chunk:
                return False
            got += chunk
        head, body = got.split(b"\r\n\r\n", 1)
        return head.startswith(b"HTTP/1.1 200 OK\r\n") and body == expected
    if framing == "line":
        message += b"\n"
    s.sendall(message)
    expected = b"You say that " + message
    got = b""
    while len(got) < len(expected):
        chunk = s.recv(1024)
        if not chunk:
            break
        got += chunk
    return got == expected

# Warm the server's one-off allocations (event buffer, pools) before the baseline.
warm = connect()
exchange(warm, 0); warm.close()
time.sleep(0.2)
base = rss_kib()
sockets, wrong = [], 0
for i in range(conns):
    s = connect()
    wrong += not exchange(s, i)
    sockets.append(s)
time.sleep(0.5)
held = rss_kib()
print(f"framing                 {framing}{' (3,000-byte heads in two reads)' if split_head else ''}{' over TLS' if tls else ''}")
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
