#!/usr/bin/env bash
# One load point, two servers, many short rounds taken in turn: the figure to trust on a shared
# machine, where one sweep's ratio moves by ±10-30 % (scripts/loadtest.sh measures each point once).
#
#   scripts/paired.sh [--framing F] [--size BYTES] [--pipeline K] [--method get|post] [--conns N]
#                     [--rate MSGS_PER_S] [--rounds N] [--duration SECS] [--warmup SECS]
#                     [--against PEER|PATH]
#
# A is saythat (the release build, or SAYTHAT_BIN); B is the peer scripts/loadtest.sh compares it
# with (tokio for chunk and line, hyper for http, tungstenite for ws, hyper/tokio over tokio-rustls
# for tls_chunk and tls_http), another peer by name, or another saythat build by its path (a
# before/after). Each round starts both servers afresh, runs the same `saythat load` against A
# and then B (B then A in every other round), and reads each server's CPU time (utime+stime) and
# voluntary context switches from /proc over the measured window. Prints a line per round and the
# medians; the ratio to trust is the median of the rounds' A/B ratios, and their spread says how
# far to trust it.
# Closed loop by default (each connection sends when its answer comes, so the load generator on
# the other core may be the bottleneck: see the switches a message); --rate makes it open loop.
#
# Exits 1 if a load run had an error (a wrong, late or missing answer) or a server died, 2 on a
# bad option. Loopback only; bounded (rounds x 2 x (warmup + duration) seconds plus the build);
# the servers are stopped on exit, Ctrl-C included. Needs openssl for the tls_ framings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() {
  cat <<'EOF'
usage: scripts/paired.sh [--framing F] [--size BYTES] [--pipeline K] [--method get|post]
                         [--conns N] [--rate MSGS_PER_S] [--rounds N] [--duration SECS]
                         [--warmup SECS] [--against PEER|PATH]
  --framing F     chunk (default), line, http, ws, tls_chunk or tls_http
  --size BYTES    message size, or the HTTP path's or body's (default 64)
  --pipeline K    messages in flight per connection (default 1)
  --method M      HTTP method, get (default) or post
  --conns N       connections (default 50)
  --rate R        open loop at R messages per second in all (default: closed loop)
  --rounds N      rounds, each measuring both servers (default 8)
  --duration S    measured seconds per server per round (default 3)
  --warmup S      seconds of load before measuring (default 1)
  --against B     tokio, hyper, tungstenite, rustls, or the path of another saythat binary
                  (default: the framing's peer)
SAYTHAT_BIN, if set, is the saythat measured as A; SAYTHAT_LOAD_BIN the load generator.
EOF
}

framing=chunk size=64 pipeline=1 method=get conns=50 rate= rounds=8 duration=3 warmup=1 against=
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --framing | --size | --pipeline | --method | --conns | --rate | --rounds | --duration | \
      --warmup | --against)
      [ $# -ge 2 ] || { echo "paired: $1 needs a value" >&2; usage >&2; exit 2; }
      name=${1#--}
      printf -v "$name" '%s' "$2"
      shift 2 ;;
    *) echo "paired: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case $framing in chunk | line | http | ws | tls_chunk | tls_http) ;;
  *) echo "paired: --framing takes chunk, line, http, ws, tls_chunk or tls_http" >&2; exit 2 ;;
esac
case $method in get | post) ;; *) echo "paired: --method takes get or post" >&2; exit 2 ;; esac
for n in size pipeline conns rounds ${rate:+rate}; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "paired: --$n takes a whole number above 0" >&2; exit 2; }
done
((conns <= 10000 && rounds <= 100)) || { echo "paired: at most 10000 --conns and 100 --rounds" >&2; exit 2; }
for n in duration warmup; do
  awk -v s="${!n}" 'BEGIN { exit !(s ~ /^[0-9]+([.][0-9]+)?$/ && s + 0 <= 600) }' ||
    { echo "paired: --$n takes a number of seconds, at most 600" >&2; exit 2; }
done
awk -v s="$duration" 'BEGIN { exit !(s > 0) }' || { echo "paired: --duration must be more than 0" >&2; exit 2; }

cargo build --release --quiet --bin saythat --example tokio_peer --example hyper_peer \
  --example tungstenite_peer --example hyper_rustls_peer
release=$(release_dir)
load_bin=${SAYTHAT_LOAD_BIN:-$release/saythat}
need_fds paired "$conns" || exit 1
ulimit -n "$(ulimit -Hn)"
pin_cores load
work=$(mktemp -d)
declare -A pid addr
trap 'stop_servers; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
if [[ $framing == tls_* ]]; then
  TLS_DIR=$work/tls
  scripts/tls-cert.sh "$TLS_DIR" >/dev/null || { echo "paired: cannot make the TLS certificate" >&2; exit 1; }
fi

# start KEY NAME|PATH: serves the framing with saythat, a named peer, or a saythat binary at PATH.
start() {
  local key=$1 who=$2
  if [ "$who" = saythat ] || [[ $who == */* ]]; then
    server_command saythat "$framing"
    [ "$who" = saythat ] && SERVER_COMMAND[0]=${SAYTHAT_BIN:-${SERVER_COMMAND[0]}}
    [[ $who == */* ]] && SERVER_COMMAND[0]=$who
    [ -x "${SERVER_COMMAND[0]}" ] || { echo "paired: ${SERVER_COMMAND[0]} is not an executable" >&2; exit 2; }
  else
    server_command "$who" "$framing" || exit 2
  fi
  RUST_LOG=warn,saythat=info "${on_server[@]}" "${SERVER_COMMAND[@]}" 2>"$work/$key.log" &
  pid[$key]=$!
  addr[$key]=$(listen_addr "$work/$key.log") || { echo "paired: $who did not start" >&2; exit 1; }
}
against=${against:-$(peer_of "$framing")}
# Both servers start afresh each round: a process keeps its luck (where its buffers and code
# landed) for as long as it runs, and saythat against itself differed by up to 8 % in medians
# of 12 rounds on the same two processes.
start_both() {
  pid=()
  start A saythat
  start B "$against"
}

# cpu_and_switches PID: utime+stime in clock ticks, and voluntary context switches (sleeps).
cpu_and_switches() {
  echo "$(sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }')" \
    "$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status")"
}
how=(--framing "${framing#tls_}" --size "$size" --pipeline "$pipeline" --conns "$conns")
[[ $framing == *http ]] && how+=(--method "$method")
[[ $framing == tls_* ]] && how+=(--tls --tls-ca "$TLS_DIR/ca.pem")
[ -n "$rate" ] && how+=(--rate "$rate")
# measure KEY: one load run against KEY; prints "msgs_per_s cpu_us_per_msg switches_per_msg".
measure() {
  local p=${pid[$1]} json=$work/load.json rc=0 before after
  "${on_load[@]}" "$load_bin" load --addr "${addr[$1]}" "${how[@]}" --duration "$duration" \
    --warmup "$warmup" --json >"$json" 2>"$work/load.err" &
  local load=$!
  sleep "$warmup"
  before=$(cpu_and_switches "$p")
  wait "$load" || rc=$?
  after=$(cpu_and_switches "$p" 2>/dev/null) || { echo "paired: server $1 died" >&2; exit 1; }
  python3 - "$json" "$rc" "$before" "$after" "$clk_tck" <<'EOF' || { cat "$work/load.err" >&2; exit 1; }
import json, sys
report, rc, before, after, hz = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
try:
    r = json.load(open(report))
except ValueError:
    sys.exit(f"paired: no report from the load run (exit {rc})")
if rc != 0 or r["errors"] != 0 or r["messages"] == 0:
    sys.exit(f"paired: the load run had {r['errors']} errors and {r['messages']} messages (exit {rc})")
(t0, s0), (t1, s1) = (map(int, x.split()) for x in (before, after))
n = r["messages"]
print(f"{r['messages_per_s']:.0f} {(t1 - t0) * 1e6 / hz / n:.3f} {(s1 - s0) / n:.4f}")
EOF
}

echo "paired: A = saythat${SAYTHAT_BIN:+ ($SAYTHAT_BIN)}, B = $against; $framing ${size} B," \
  "$pipeline in flight, $conns conns, ${rate:+open loop at $rate/s, }$rounds rounds of" \
  "${warmup}+${duration}s; $machine"
printf '%6s | %9s %9s %9s | %9s %9s %9s | %6s\n' round "A msgs/s" "A cpu us" "A sw/msg" \
  "B msgs/s" "B cpu us" "B sw/msg" "A/B"
rows=$work/rows
for round in $(seq "$rounds"); do
  start_both
  if ((round % 2)); then a=$(measure A); b=$(measure B); else b=$(measure B); a=$(measure A); fi
  stop_servers
  read -r am ac as <<<"$a"
  read -r bm bc bs <<<"$b"
  echo "$am $ac $as $bm $bc $bs" >>"$rows"
  printf '%6d | %9.0f %9.2f %9.4f | %9.0f %9.2f %9.4f | %6.3f\n' "$round" "$am" "$ac" "$as" \
    "$bm" "$bc" "$bs" "$(awk -v a="$ac" -v b="$bc" 'BEGIN { print a / b }')"
done
python3 - "$rows" <<'EOF'
import statistics as st, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
col = lambda i: st.median(r[i] for r in rows)
ratios = sorted(r[1] / r[4] for r in rows)
print(f"{'median':>6} | {col(0):9.0f} {col(1):9.2f} {col(2):9.4f} | {col(3):9.0f} {col(4):9.2f} "
      f"{col(5):9.4f} | {st.median(ratios):6.3f}")
print(f"paired: CPU per message A/B: median {st.median(ratios):.3f}, rounds {ratios[0]:.3f}-{ratios[-1]:.3f}"
      f" ({len(ratios)}); messages/s A/B: median {st.median(r[0] / r[3] for r in rows):.3f}")
EOF
