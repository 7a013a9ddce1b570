#!/usr/bin/env bash
# Does the metrics port starve the echo? Starts `saythat serve --metrics-listen` pinned to one
# core (taskset, as the review of issue 16 did), measures echo msgs/s and p99 with `saythat load`
# on another core alone, then beside 1 and 4 scrapers that pipeline `HEAD /metrics` as fast as
# they can (python3); then the cost of one scrape with 0 and with N open connections.
#
#   scripts/metrics_starve.sh [BINARY] [SECS] [CONNS_FOR_SCRAPE_COST]
#
# BINARY defaults to this tree's release build (so does an empty one: `"" 4`); give another
# (e.g. main's) to compare; the load generator is always this tree's. Loopback only; everything
# started here is stopped on exit.
#
# The scrapers run on the load generator's core (a 2-core machine has no third), so they take
# CPU from it: each keeps requests in flight and sleeps in select() until the socket can take
# more or has answers. SCRAPER=spin makes them spin on non-blocking calls instead (the first
# version of this script), which takes half the generator's core or more whatever the server
# does. A scrape's cost is timed from core 1 (where the client runs moves the round trip by a
# factor of 2 on a VM) on a connection accepted 10 ms before, so that it is the request's round
# trip, not the wait for the endpoint's next turn (at most one per SIDE_TURN_INTERVAL).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
cargo build --release --quiet --bin saythat
here=$(release_dir)/saythat
bin=${1:-$here}
secs=${2:-4}
conns=${3:-10000}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/scraper.py" <<'PY'
import select, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
end = time.time() + float(sys.argv[2])
spin = sys.argv[3] == "spin"
req = b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n" * 64
while time.time() < end:
    try:
        s = socket.create_connection((host, int(port)))
        s.setblocking(False)
        while time.time() < end:
            if not spin:
                select.select([s], [s], [], 0.1)
            try: s.send(req)
            except BlockingIOError: pass
            try:
                if s.recv(1 << 16) == b"": break
            except BlockingIOError: pass
        s.close()
    except OSError:
        time.sleep(0.01)
PY
scraper=${SCRAPER:-wait}

taskset -c 0 "$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --max-conns $((conns + 100)) 2>"$work/server.log" &
pids+=($!)
addr=$(listen_addr "$work/server.log")
metrics=
for _ in $(seq 100); do
  metrics=$(grep -o 'metrics on http://[^ ]*' "$work/server.log" | cut -d' ' -f3 || true)
  [ -n "$metrics" ] && break
  sleep 0.05
done
metrics=${metrics#http://}; metrics=${metrics%/metrics}
echo "binary: $bin; server on core 0 at $addr, metrics at $metrics; load and scrapers ($scraper) on core 1"

load() { taskset -c 1 "$here" load --addr "$addr" --conns 50 --duration "$secs" --warmup 1 --json; }
summary() { python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f msgs/s, p99 %s us, errors %s" % (r["messages_per_s"], r["latency_p99_us"], r["errors"]))'; }
for scrapers in 0 1 4; do
  sp=()
  for _ in $(seq "$scrapers"); do
    taskset -c 1 python3 "$work/scraper.py" "$metrics" $((secs + 2)) "$scraper" & sp+=($!)
  done
  printf 'echo beside %d scraper(s): ' "$scrapers"
  load | tee "$work/load.json" | summary
  for p in "${sp[@]}"; do wait "$p" 2>/dev/null || true; done
done

scrape_cost() {
  taskset -c 1 python3 - "$metrics" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
times = []
for _ in range(20):
    s = socket.create_connection((host, int(port)))
    time.sleep(0.01)  # accepted, and the endpoint's turns rested
    t = time.perf_counter()
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    while s.recv(1 << 16): pass
    times.append(time.perf_counter() - t)
    s.close()
    time.sleep(0.07)  # past the fresh-scrape budget's reuse
times.sort()
print(f"{times[0] * 1e6:.0f} us best, {times[10] * 1e6:.0f} us median of 20 (round trip)")
PY
}
printf 'scrape with 0 connections: '; scrape_cost
python3 - "$addr" "$conns" "$work/hold" <<'PY' &
import socket, sys, time, os, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]) + 100,) * 2)
host, port = sys.argv[1].rsplit(":", 1)
socks = [socket.create_connection((host, int(port))) for _ in range(int(sys.argv[2]))]
open(sys.argv[3], "w").close()
time.sleep(600)
PY
pids+=($!)
for _ in $(seq 600); do [ -e "$work/hold" ] && break; sleep 0.1; done
printf 'scrape with %d connections: ' "$conns"; scrape_cost
