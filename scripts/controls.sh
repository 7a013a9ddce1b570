#!/usr/bin/env bash
# Issue 17's figure: many concurrent delayed answers on one loop. Starts a release
# `saythat serve --framing http --workers 1`, then from a Python client on its own core opens N
# connections (default 10000) at once, each sending one `GET /i?delay=1s` (its own send time
# kept), and waits for every answer: prints the distribution of answer time minus the delay
# (p50, p99, max; the issue asks p99 within 50 ms), and the server's CPU per delayed request
# against per plain request, from /proc/PID/stat utime+stime over a run of N plain GETs and a
# run of N delayed ones, each on N fresh connections (connect, request, answer, close: the same
# work but the delay). Delays are timer entries, not threads: the server stays one thread.
#
#   scripts/controls.sh [CONNECTIONS] [DELAY_MS]      (default 10000 1000)
#
# Loopback only; the server is stopped on exit. Needs CONNECTIONS + 200 descriptors.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
conns=${1:-10000}
delay_ms=${2:-1000}
usage="scripts/controls.sh [CONNECTIONS] [DELAY_MS]   (default 10000 1000)"
whole_number CONNECTIONS "$conns" "$usage"
whole_number DELAY_MS "$delay_ms" "$usage"

cargo build --release --quiet --bin saythat
ulimit -n "$(ulimit -Hn)"
need_fds controls.sh "$conns"
pin_cores "the client"
bin=$(release_dir)/saythat
log=$(mktemp)
"${on_server[@]}" "$bin" serve --listen 127.0.0.1:0 --framing http --workers 1 \
  --max-conns $((conns + 100)) 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT
addr=$(listen_addr "$log")

"${on_load[@]}" python3 - "$addr" "$conns" "$server" "$delay_ms" "$clk_tck" "$machine" <<'PY'
import resource, selectors, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
conns, pid, delay_ms, clk_tck = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
machine = sys.argv[6]
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

def cpu_seconds():
    """The server's user + system time so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / clk_tck

def threads():
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))

def run(query):
    """N connections at once, one GET each; returns each answer's time from its own send."""
    sockets = []
    for i in range(conns):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(s)
    sel = selectors.DefaultSelector()
    sent, got, took = {}, {}, []
    for i, s in enumerate(sockets):
        s.sendall(b"GET /%d%s HTTP/1.1\r\nHost: a\r\n\r\n" % (i, query))
        sent[s.fileno()] = time.monotonic()
        got[s.fileno()] = b""
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    left = conns
    deadline = time.monotonic() + delay_ms / 1000 + 60
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = s.recv(4096)
            fd = s.fileno()
            got[fd] += data
            head, _, body = got[fd].partition(b"\r\n\r\n")
            length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n")
                           if l.lower().startswith(b"content-length:")), None)
            if not data or (length is not None and len(body) >= length):
                took.append(time.monotonic() - sent[fd])
                if not head.startswith(b"HTTP/1.1 200 OK"):
                    sys.exit(f"a wrong answer: {got[fd][:200]!r}")
                sel.unregister(s)
                left -= 1
    for s in sockets:
        s.close()
    if left:
        sys.exit(f"{left} of {conns} answers did not come")
    return sorted(took)

def pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p / 100))]

# Warm up (first-use allocations, the slab's growth) with a small run of each kind.
saved = conns
conns = min(conns, 500)
run(b""); run(b"?delay=10ms")
conns = saved
time.sleep(0.5)
before = cpu_seconds()
run(b"")
plain_cpu = cpu_seconds() - before
time.sleep(0.5)
before = cpu_seconds()
took = run(b"?delay=%dms" % delay_ms)
delayed_cpu = cpu_seconds() - before
late = [(t - delay_ms / 1000) * 1000 for t in took]
print(f"machine                     {machine}")
print(f"concurrent delayed requests {conns} (delay={delay_ms}ms, one worker, {threads()} thread(s))")
print(f"answer time - delay         p50 {pct(late, 50):.1f} ms, p99 {pct(late, 99):.1f} ms, max {late[-1]:.1f} ms")
print(f"early answers               {sum(1 for t in late if t < 0)}")
print(f"server CPU per plain GET    {plain_cpu / conns * 1e6:.1f} us ({plain_cpu:.2f} s for {conns}; ticks of {1000 // clk_tck} ms)")
print(f"server CPU per delayed GET  {delayed_cpu / conns * 1e6:.1f} us ({delayed_cpu:.2f} s for {conns})")
ratio = delayed_cpu / plain_cpu if plain_cpu else float("inf")
print(f"delayed / plain             {ratio:.2f}x")
PY
