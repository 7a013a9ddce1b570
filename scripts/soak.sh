#!/usr/bin/env bash
# Soak test: a bounded mixed workload against a release `saythat serve` on a free loopback port.
#
#   scripts/soak.sh [SECONDS]        (default 60)
#
# At once, for SECONDS: 200 ping-pong clients at a fixed rate (their p99 is the fairness figure),
# one streamer sending and reading 64 KiB messages flat out, 20 churning clients (a new connection
# per message), 5 clients that send and never read, and clients that send then reset. Every answer
# is checked byte for byte by `saythat load`. Prints the server's RSS and descriptors, answers
# checked, wrong answers and the fairness p99; exits 1 if any answer was wrong, a descriptor
# leaked, memory grew past the bound, or the server died. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
seconds=${1:-60}
whole_number SECONDS "$seconds" "scripts/soak.sh [SECONDS]   (default 60)"
# Server RSS may grow by the output caps of the clients that never read plus the loop's buffers;
# anything past this is a leak.
max_rss_growth_kib=${MAX_RSS_GROWTH_KIB:-16384}

cargo build --release --quiet
bin=$(release_dir)/saythat
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
pids=()
# A failed soak keeps its report (each load run's JSON with its first errors, the server's log,
# the hostile clients' counts) under results/, which git ignores; a passed one leaves nothing.
cleanup() {
  local status=$?
  for pid in "${pids[@]}" ${server:-}; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$status" != 0 ] && [ -d "$work" ]; then
    local kept
    kept=results/soak-$(date +%Y%m%d-%H%M%S)-$$
    mkdir -p results && mv "$work" "$kept"
    echo "soak: the report is kept in $kept" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" serve --listen 127.0.0.1:0 2>"$work/server.log" &
server=$!
addr=$(listen_addr "$work/server.log")
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$server/status"; }
fds() { ls "/proc/$server/fd" | wc -l; }
rss_start=$(rss)
fds_start=$(fds)
echo "soak: ${seconds}s against $addr (server pid $server)"

# Each run's stderr is kept beside its JSON report, for the report a failure keeps.
load() {
  local name=$1
  shift
  "$bin" load --addr "$addr" --duration "$seconds" --warmup 1 --json "$@" \
    >"$work/$name.json" 2>"$work/$name.err"
}
load pingpong --conns 200 --size 64 --rate 5000 & pids+=($!)
load streamer --conns 1 --size 65536 & pids+=($!)
load churn --conns 20 --size 32 --reconnect 1 & pids+=($!)

# Non-readers and resets: what `saythat load` does not do on purpose.
python3 - "$addr" "$seconds" >"$work/hostile.txt" <<'PY' & pids+=($!)
import socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1)
end = time.monotonic() + float(sys.argv[2])
pushers = []
for _ in range(5):
    s = socket.create_connection((host, int(port)))
    s.setblocking(False)
    pushers.append(s)
pushed = resets = 0
chunk = b"never read " * 100
while time.monotonic() < end:
    for s in pushers:
        try:
            pushed += s.send(chunk)
        except BlockingIOError:
            pass
    r = socket.create_connection((host, int(port)))
    r.sendall(b"about to reset " * 200)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.close()
    resets += 1
    time.sleep(0.02)
for s in pushers:
    s.close()
print(pushed, resets)
PY

rss_max=$rss_start
for _ in $(seq "$((seconds + 5))"); do
  kill -0 "$server" 2>/dev/null || break
  now=$(rss); [ "$now" -gt "$rss_max" ] && rss_max=$now
  alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 1 ] || break
  sleep 1
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
pids=()
kill -0 "$server" 2>/dev/null || { echo "soak: FAIL: the server died" >&2; cat "$work/server.log" >&2; exit 1; }

# Every client has closed: the server must be back to its starting descriptors.
fds_end=$(fds)
for _ in $(seq 100); do [ "$fds_end" -le "$fds_start" ] && break; sleep 0.1; fds_end=$(fds); done
rss_end=$(rss)

python3 - "$work" "$rss_start" "$rss_max" "$rss_end" "$fds_start" "$fds_end" "$max_rss_growth_kib" "$status" <<'PY'
import json, sys
work, rss_start, rss_max, rss_end, fds_start, fds_end, bound, status = sys.argv[1:]
runs = {name: json.load(open(f"{work}/{name}.json")) for name in ("pingpong", "streamer", "churn")}
pushed, resets = open(f"{work}/hostile.txt").read().split()
checked = sum(r["messages"] for r in runs.values())
wrong = sum(r["wrong"] for r in runs.values())
errors = sum(r["errors"] for r in runs.values())
p99 = runs["pingpong"]["latency_p99_us"]
growth = int(rss_max) - int(rss_start)
print(f"answers checked      {checked}")
print(f"wrong answers        {wrong}")
print(f"other errors         {errors - wrong} (timeouts, early closes or messages not sent)")
print(f"fairness p99         {p99 / 1000:.2f} ms (ping-pong at 5000 msgs/s beside the streamer)")
print(f"streamer             {runs['streamer']['received_mib_per_s']:.1f} MiB/s answered")
print(f"churn                {runs['churn']['reconnects']} reconnects")
print(f"non-readers, resets  {int(pushed) / 2**20:.1f} MiB pushed, {resets} resets")
print(f"server RSS           start {rss_start} KiB, max {rss_max} KiB, end {rss_end} KiB")
print(f"server fds           start {fds_start}, end {fds_end}")
failures = []
if wrong or errors:
    failures.append(f"{errors} errors, {wrong} wrong answers")
    for name, r in runs.items():
        for line in r["first_errors"][:5]:
            print(f"{name}: {line}")
if int(fds_end) > int(fds_start):
    failures.append(f"{int(fds_end) - int(fds_start)} descriptors leaked")
if growth > int(bound):
    failures.append(f"RSS grew {growth} KiB, over the {bound} KiB bound")
if status != "0":
    failures.append("a load run failed")
print("soak: " + ("FAIL: " + "; ".join(failures) if failures else "ok"))
sys.exit(1 if failures else 0)
PY
