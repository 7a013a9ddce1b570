#!/usr/bin/env bash
# Load-test sweep: saythat against minimal peers over loopback, a tokio server
# (examples/tokio_peer.rs) for the echo framings, a hyper server (examples/hyper_peer.rs) for
# HTTP, a tokio-tungstenite server (examples/tungstenite_peer.rs) for WebSocket, and the same
# hyper and tokio answers over tokio-rustls (examples/hyper_rustls_peer.rs) for TLS, every answer
# checked byte for byte by `saythat load`.
#
#   scripts/loadtest.sh [--duration SECS] [--warmup SECS] [--quick] [--out DIR] [--no-peer]
#                       [--only echo|http|ws|tls] [--server-cpu PCT]
#
# Echo points: connections 1, 10, 100, 1000 times three scenarios: 64 B and 1024 B chunk
# ping-pong (one message in flight per connection), and 64 B lines with 16 in flight
# (`--framing line`). HTTP points (`--framing http`): keep-alive GET of a 64-byte path at 50 and
# 1000 connections, 16 pipelined GETs per connection at 50, and a 64-byte POST at 50. WebSocket
# points (`--framing ws` against saythat's `--framing http`, upgraded per connection): 64-byte
# binary messages at 50 connections, one and 16 in flight per connection. TLS points (saythat
# with `--tls-cert`, `saythat load --tls`; an ECDSA P-256 certificate from scripts/tls-cert.sh,
# TLS 1.3 as both ends negotiate it; each connection's handshake is in the warmup, so the figures
# are the steady state): keep-alive HTTPS GET of a 64-byte path at 50 connections, and 64 B and
# 1024 B chunk ping-pong at 50 connections, closed loop and again open loop at one offered rate
# for both servers (GET and 64 B at 50,000 messages/s, 1024 B at 40,000). saythat and
# the peer take turns point by point, so machine noise hits both alike. With 2 cores or more the
# server runs on CPU 0 and the load generator on CPU 1. For each point the server's CPU time
# (utime, stime from /proc/PID/stat) is read at the end of the warmup and after the run, and
# divided by the messages (requests, in HTTP) measured: the chart's third panel.
#
# `--server-cpu PCT` holds each server to PCT % of a core (a CFS quota of 1 ms, the kernel's
# least, in a period of 100/PCT ms, in a cgroup of its own; root and a writable cgroup cpu
# controller needed), so that in a closed loop the server, not the load generator, is the
# bottleneck. Without it, on 2 cores the generator is the bottleneck, and a server that keeps up
# with it answers each message as it comes, paying an epoll_wait (and now and then a sleep and a
# wakeup) that a server always behind it spreads over many. The throttle's pauses are short, so
# each resumes with every connection's request waiting, before the server can catch up again:
# both servers then make about 2.05 syscalls per message (in 10 ms periods the faster one
# caught up within each period and went back to answering one request at a time).
#
# Writes DIR/loadtest.csv, DIR/loadtest.svg (examples/plot.rs), DIR/points/*.json (every load
# report) and DIR/logs/; prints a table per kind of point with the saythat/peer ratios. Exits 1 if
# any point had an error (a wrong, late or missing answer; in HTTP also a status other than 200 or
# a `Connection: close`) or a server died, 2 on a bad option. Loopback only; every run is bounded
# (default: about 2.5 minutes of load plus the build; `--quick` about 1 minute) and the servers are
# stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() {
  cat <<'EOF'
usage: scripts/loadtest.sh [--duration SECS] [--warmup SECS] [--quick] [--out DIR] [--no-peer]
                           [--only echo|http|ws|tls] [--server-cpu PCT]
  --duration SECS  measured seconds per point (default 3)
  --warmup SECS    seconds of load before measuring, per point (default 1)
  --quick          --duration 1 --warmup 0.5
  --out DIR        where results go (default results/)
  --no-peer        measure saythat only, without the tokio, hyper, tungstenite and rustls peers
  --only KIND      only the echo points (chunk and line framing), the HTTP points, the
                   WebSocket points or the TLS points (HTTPS GET, chunk echo over TLS)
  --server-cpu PCT each server held to PCT % of a core (10-95; a cgroup CFS quota, as root),
                   so that it, not the load generator, is the closed loop's bottleneck
Needs openssl for the TLS points' certificate (apt-get install openssl). SAYTHAT_LOAD_BIN, if
set, is the load generator's binary instead of the release saythat; SAYTHAT_BIN, if set, is the
server measured as saythat (another build, e.g. an older commit's, for a before/after with this
tree's load generator and peers).
EOF
}

duration=3
warmup=1
out=results
peer=1
only=
server_cpu=
while [ $# -gt 0 ]; do
  case $1 in
    --duration | --warmup | --out | --only | --server-cpu)
      [ $# -ge 2 ] || { echo "loadtest: $1 needs a value" >&2; usage >&2; exit 2; }
      case $1 in
        --duration) duration=$2 ;;
        --warmup) warmup=$2 ;;
        --out) out=$2 ;;
        --only) only=$2 ;;
        --server-cpu) server_cpu=$2 ;;
      esac
      shift 2 ;;
    --quick) duration=1 warmup=0.5; shift ;;
    --no-peer) peer=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "loadtest: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
number='^[0-9]+([.][0-9]+)?$'
[[ $duration =~ $number ]] && [[ $warmup =~ $number ]] || {
  echo "loadtest: --duration and --warmup take a number of seconds" >&2; exit 2; }
awk -v d="$duration" 'BEGIN { exit !(d > 0 && d <= 600) }' || {
  echo "loadtest: --duration must be more than 0 and at most 600 seconds" >&2; exit 2; }
awk -v w="$warmup" 'BEGIN { exit !(w <= 600) }' || {
  echo "loadtest: --warmup must be at most 600 seconds" >&2; exit 2; }
if [ -n "$server_cpu" ] && ! { [[ $server_cpu =~ ^[0-9]+$ ]] && ((server_cpu >= 10 && server_cpu <= 95)); }; then
  echo "loadtest: --server-cpu takes a whole percentage of one core, 10 to 95" >&2; exit 2
fi
case $only in
  '' | echo | http | ws | tls) ;;
  *) echo "loadtest: --only takes echo, http, ws or tls" >&2; usage >&2; exit 2 ;;
esac

# name, framing, bytes per message (in HTTP the path or body), messages in flight per connection,
# HTTP method (- for the echo framings), then the connection counts. A `_` in a name is a space
# in the table and the chart. A method ending in @RATE makes the point open loop at RATE
# messages per second in all (`load --rate`), the same for both servers: a closed-loop point
# runs each server as fast as the load generator lets it, and a server that keeps up sleeps in
# epoll_wait between bursts and pays a wakeup per burst, which one slower than the load
# generator never does; at one offered rate both sleep alike, and CPU per message is the work.
echo_scenarios=(
  "64B chunk 64 1 - 1 10 100 1000"
  "1024B chunk 1024 1 - 1 10 100 1000"
  "line_x16 line 64 16 - 1 10 100 1000"
)
http_scenarios=(
  "GET http 64 1 get 50 1000"
  "GET_x16 http 64 16 get 50"
  "POST_64B http 64 1 post 50"
)
# Binary messages (`saythat load` sends binary unless told --ws-text).
ws_scenarios=(
  "WS_64B ws 64 1 - 50"
  "WS_x16 ws 64 16 - 50"
)
# Over TLS: tls_http is saythat's HTTP framing with --tls-cert, tls_chunk its chunk framing.
tls_scenarios=(
  "TLS_GET tls_http 64 1 get 50"
  "TLS_64B tls_chunk 64 1 - 50"
  "TLS_1024B tls_chunk 1024 1 - 50"
  "TLS_GET_at_50k/s tls_http 64 1 get@50000 50"
  "TLS_64B_at_50k/s tls_chunk 64 1 -@50000 50"
  "TLS_1024B_at_40k/s tls_chunk 1024 1 -@40000 50"
)
case $only in
  echo) scenarios=("${echo_scenarios[@]}") ;;
  http) scenarios=("${http_scenarios[@]}") ;;
  ws) scenarios=("${ws_scenarios[@]}") ;;
  tls) scenarios=("${tls_scenarios[@]}") ;;
  *) scenarios=("${echo_scenarios[@]}" "${http_scenarios[@]}" "${ws_scenarios[@]}"
    "${tls_scenarios[@]}") ;;
esac
prefix='You say that '
# The framings the scenarios use, each served by saythat and (unless --no-peer) its peer.
framings=()
for scenario in "${scenarios[@]}"; do
  read -r _ framing _ <<<"$scenario"
  [[ " ${framings[*]} " == *" $framing "* ]] || framings+=("$framing")
done
# servers_for FRAMING: the servers measured in FRAMING, saythat first.
servers_for() {
  if [ "$peer" = 1 ]; then echo "saythat $(peer_of "$1")"; else echo saythat; fi
}

started=$SECONDS
echo "loadtest: building (release)"
cargo build --release --quiet --bin saythat --example tokio_peer --example hyper_peer \
  --example tungstenite_peer --example hyper_rustls_peer --example plot
release=$(release_dir)
bin=${SAYTHAT_BIN:-$release/saythat}
load_bin=${SAYTHAT_LOAD_BIN:-$release/saythat}
rustls_bin=$release/examples/hyper_rustls_peer
tokio_bin=$release/examples/tokio_peer
hyper_bin=$release/examples/hyper_peer
tungstenite_bin=$release/examples/tungstenite_peer
plot_bin=$release/examples/plot
built=$SECONDS

# 1000 connections need more descriptors than the usual soft limit of 1024; both servers and the
# load generator inherit this.
ulimit -n "$(ulimit -Hn)"
max_conns=1
points=0
for scenario in "${scenarios[@]}"; do
  read -r _ framing _ _ _ conns_list <<<"$scenario"
  read -ra servers <<<"$(servers_for "$framing")"
  for conns in $conns_list; do
    [ "$conns" -gt "$max_conns" ] && max_conns=$conns
    points=$((points + ${#servers[@]}))
  done
done
need_fds loadtest "$max_conns" || exit 1
pin_cores load

mkdir -p "$out/points" "$out/logs"
csv=$out/loadtest.csv
svg=$out/loadtest.svg

declare -A pid addr
# --server-cpu's cgroup: a directory of its own, removed once its servers are gone.
quota_dir=
cleanup() {
  stop_servers
  if [ -n "$quota_dir" ]; then rmdir "$quota_dir" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_quota: the cgroup --server-cpu's servers run in (cgroup v2's cpu.max, else v1's
# cpu.cfs_quota_us): 1 ms of CPU, the least quota the kernel takes, in each 100/PCT ms period, so
# the throttled pauses are as short as PCT allows (0.43 ms at 70 %).
make_quota() {
  local v2=/sys/fs/cgroup v1=/sys/fs/cgroup/cpu quota=1000 period=$(((100000 + server_cpu - 1) / server_cpu))
  if grep -qw cpu "$v2/cgroup.subtree_control" 2>/dev/null; then
    quota_dir=$v2/saythat-loadtest-$$
    mkdir "$quota_dir" && echo "$quota $period" >"$quota_dir/cpu.max"
  elif [ -w "$v1/cgroup.procs" ]; then
    quota_dir=$v1/saythat-loadtest-$$
    mkdir "$quota_dir" && echo "$period" >"$quota_dir/cpu.cfs_period_us" &&
      echo "$quota" >"$quota_dir/cpu.cfs_quota_us"
  else
    false
  fi
}
if [ -n "$server_cpu" ]; then
  make_quota 2>/dev/null || {
    echo "loadtest: --server-cpu needs a cgroup cpu controller this user may write (cgroup v2 with" \
      "cpu in /sys/fs/cgroup/cgroup.subtree_control, or v1's /sys/fs/cgroup/cpu): run as root," \
      "or leave --server-cpu out" >&2
    exit 1
  }
  machine+=", each server held to $server_cpu % of a core"
fi

# start KEY COMMAND...: runs a server pinned to the server CPU; records its pid and address.
start() {
  local key=$1 log="$out/logs/${1/:/-}.log" a=
  shift
  RUST_LOG=info "${on_server[@]}" "$@" 2>"$log" &
  pid[$key]=$!
  a=$(listen_addr "$log") || { echo "loadtest: $key did not start" >&2; exit 1; }
  addr[$key]=$a
  if [ -n "$quota_dir" ]; then echo "${pid[$key]}" >"$quota_dir/cgroup.procs"; fi
}

# The TLS points' certificate (a test CA and a server certificate for 127.0.0.1, P-256).
tls_dir=$out/tls
if [[ " ${framings[*]} " == *" tls_"* ]]; then
  rm -rf "$tls_dir"
  scripts/tls-cert.sh "$tls_dir" >/dev/null || { echo "loadtest: cannot make the TLS certificate" >&2; exit 1; }
fi
for framing in "${framings[@]}"; do
  # A WebSocket is saythat's HTTP mode upgraded; its own server, so its CPU is its own.
  serves=${framing#tls_}
  [ "$framing" = ws ] && serves=http
  tls=()
  [[ $framing == tls_* ]] && tls=(--tls-cert "$tls_dir/server.pem" --tls-key "$tls_dir/server.key")
  start "saythat:$framing" "$bin" serve --listen 127.0.0.1:0 --prefix "$prefix" --framing "$serves" "${tls[@]}"
  if [ "$peer" = 1 ]; then
    case $framing in
      tls_*) start "rustls:$framing" "$rustls_bin" 127.0.0.1:0 "$prefix" "$serves" \
        "$tls_dir/server.pem" "$tls_dir/server.key" ;;
      http) start "hyper:$framing" "$hyper_bin" 127.0.0.1:0 "$prefix" ;;
      ws) start "tungstenite:$framing" "$tungstenite_bin" 127.0.0.1:0 "$prefix" ;;
      *) start "tokio:$framing" "$tokio_bin" 127.0.0.1:0 "$prefix" "$framing" ;;
    esac
  fi
done

# utime and stime of a process in clock ticks: fields 14 and 15 of /proc/PID/stat, counted after
# the `(comm)` field, which may hold spaces.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
# A number field of a one-line load report; the error samples at its end are cut off first.
field() { sed 's/,"first_errors".*//; s/.*"'"$1"'":\([^,}]*\).*/\1/' "$2"; }

# What every process but this sweep's has used so far: "pid ticks" lines, ticks being utime +
# stime + cutime + cstime (so work that ended is counted in its parent). This shell, its children
# (the servers, the load runs) and the `cat` itself are left out. Snapshots go to files because a
# subshell would be one more child to leave out.
others_snapshot() {
  cat /proc/[0-9]*/stat 2>/dev/null >"$out/logs/procs.raw" || true
  awk -v me=$$ '{ pid = $1; sub(/^.*\) /, "")
    if (pid != me && $2 != me) print pid, $12 + $13 + $14 + $15 }' "$out/logs/procs.raw" >"$1"
  rm -f "$out/logs/procs.raw"
}

failed=0
others_snapshot "$out/logs/others.0"
sweep_start=$SECONDS
echo "loadtest: $points points of ${warmup}s warmup + ${duration}s measured; $machine"
# `framing` is last so the columns before it keep their places.
echo "server,scenario,conns,size,pipeline,msgs_per_s,p50_us,p99_us,p999_us,errors,cpu_user_us_per_msg,cpu_sys_us_per_msg,cpu_us_per_msg,framing" >"$csv"
for scenario in "${scenarios[@]}"; do
  read -r name framing size pipeline method conns_list <<<"$scenario"
  label=${name//_/ }
  how=()
  if [[ $method == *@* ]]; then
    how=(--rate "${method#*@}")
    method=${method%@*}
  fi
  [ "$method" != - ] && how+=(--method "$method")
  load_framing=${framing#tls_}
  [ "$load_framing" != "$framing" ] && how+=(--tls --tls-ca "$tls_dir/ca.pem")
  read -ra servers <<<"$(servers_for "$framing")"
  for conns in $conns_list; do
    for server in "${servers[@]}"; do
      key=$server:$framing
      p=${pid[$key]}
      json=$out/points/$server-${name//\//per}-$conns.json
      # The first CPU sample is taken when the warmup ends, so the CPU time and the message count
      # cover the same window.
      ( sleep "$warmup"; cpu_ticks "$p" >"$json.cpu0" ) &
      sampler=$!
      rc=0
      "${on_load[@]}" "$load_bin" load --addr "${addr[$key]}" --conns "$conns" --size "$size" \
        --framing "$load_framing" "${how[@]}" --pipeline "$pipeline" --prefix "$prefix" \
        --duration "$duration" --warmup "$warmup" --json >"$json" 2>"$json.err" || rc=$?
      wait "$sampler" || true
      [ -s "$json.err" ] || rm -f "$json.err"
      read -r u1 s1 < <(cpu_ticks "$p" 2>/dev/null || echo "- -")
      read -r u0 s0 <"$json.cpu0" || true
      rm -f "$json.cpu0"
      if ! kill -0 "$p" 2>/dev/null; then
        echo "loadtest: FAIL: $key died during $label x $conns conns; its log:" >&2
        cat "$out/logs/${key/:/-}.log" >&2
        exit 1
      fi
      messages=$(field messages "$json" 2>/dev/null || true)
      if ! [[ $messages =~ ^[0-9]+$ ]]; then
        echo "loadtest: FAIL: no report from $server $label x $conns conns (exit $rc):" >&2
        cat "$json.err" 2>/dev/null >&2
        failed=1
        continue
      fi
      msgs=$(field messages_per_s "$json")
      p50=$(field latency_p50_us "$json")
      p99=$(field latency_p99_us "$json")
      p999=$(field latency_p999_us "$json")
      errors=$(field errors "$json")
      if [ "$rc" != 0 ] || [ "$errors" != 0 ]; then
        echo "loadtest: FAIL: $server $label x $conns conns: $errors errors (exit $rc):" >&2
        cat "$json.err" 2>/dev/null >&2
        failed=1
      fi
      row=$(awk -v u0="$u0" -v s0="$s0" -v u1="$u1" -v s1="$s1" -v hz="$clk_tck" \
        -v n="$messages" 'BEGIN {
          if (n == 0) { print ",,"; exit }
          u = (u1 - u0) * 1e6 / hz / n; s = (s1 - s0) * 1e6 / hz / n
          printf "%.3f,%.3f,%.3f", u, s, u + s }')
      echo "$server,$label,$conns,$size,$pipeline,$msgs,$p50,$p99,$p999,$errors,$row,$framing" >>"$csv"
      printf '  %-11s %-9s %5s conns  %9.0f msgs/s  p50 %6s us  p99 %6s us  cpu %s us/msg\n' \
        "$server" "$label" "$conns" "$msgs" "$p50" "$p99" "${row##*,}"
    done
  done
done
swept=$SECONDS
# Other work on a shared machine takes CPU from the servers and the load: say how much.
others_snapshot "$out/logs/others.1"
other=$(awk -v hz="$clk_tck" -v secs=$((swept - sweep_start)) -v cores="$cores" '
  NR == FNR { before[$1] = $2; next }
  { o += $2 - before[$1]; seen[$1] = 1 }
  END {
    # A process that ended is counted whole in its parent: take off what it had used before.
    for (p in before) if (!(p in seen)) o -= before[p]
    o = o < 0 ? 0 : o / hz; share = secs > 0 ? 100 * o / secs / cores : 0
    printf "%.1f CPU-s, %.0f%% of the machine", o, share }' "$out/logs/others.0" "$out/logs/others.1")

# table KIND PEER RATE WHAT SHORT: the table of the KIND points (echo: chunk and line framing;
# http; ws), one line per point, saythat beside PEER, with their ratios; RATE names the throughput
# column, WHAT one unit of it, SHORT its abbreviation. Prints nothing when the sweep had no such
# point.
table() {
  awk -F, -v kind="$1" -v peer="$2" -v rate="$3" -v what="$4" -v short="$5" '
    NR == 1 { next }
    (($14 == "http" || $14 == "ws") ? $14 : $14 ~ /^tls_/ ? "tls" : "echo") != kind { next }
    {
      k = $2 SUBSEP $3
      if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      msgs[$1, k] = $6; p50[$1, k] = $7; p99[$1, k] = $8
      cpu[$1, k] = $13; errors[$1, k] = $10
      split_cpu[$1, k] = $13 == "" ? "-" : sprintf("%.2f+%.2f", $11, $12)
    }
    function side(s, k) {
      if (!((s, k) in msgs)) return sprintf("%9s %6s %7s %12s", "-", "-", "-", "-")
      return sprintf("%9.0f %6d %7d %12s", msgs[s, k], p50[s, k], p99[s, k], split_cpu[s, k])
    }
    function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
    END {
      if (n == 0) exit
      print ""
      printf "%-9s %5s | %-38s | %-38s | %s\n", "", "", "saythat", peer, "saythat / " peer
      printf "%-9s %5s | %9s %6s %7s %12s | %9s %6s %7s %12s | %6s %8s\n", "scenario", "conns",
        rate, "p50us", "p99us", "cpu usr+sys", rate, "p50us", "p99us", "cpu usr+sys",
        rate, "cpu/" short
      for (i = 1; i <= n; i++) {
        k = order[i]; split(k, part, SUBSEP)
        bad = ""
        if (errors["saythat", k] + 0 > 0) bad = bad sprintf("  saythat: %d errors", errors["saythat", k])
        if (errors[peer, k] + 0 > 0) bad = bad sprintf("  %s: %d errors", peer, errors[peer, k])
        printf "%-9s %5s | %s | %s | %6s %8s%s\n", part[1], part[2], side("saythat", k),
          side(peer, k), ratio(msgs["saythat", k], msgs[peer, k]),
          ratio(cpu["saythat", k], cpu[peer, k]), bad
      }
      print "(latencies and CPU in microseconds; cpu: the server process'"'"'s user+system CPU time per"
      print " measured " what "; ratios above 1 mean saythat answered more, or used more CPU per " what ")"
    }' "$csv"
}
table echo tokio msgs/s message msg
table http hyper req/s request req
table ws tungstenite msgs/s message msg
table tls rustls msgs/s message msg
echo

"$plot_bin" "$csv" "$svg" "$machine"
echo "loadtest: $csv, $svg; build $((built - started)) s, sweep $((swept - built)) s," \
  "total $((SECONDS - started)) s on $machine"
echo "loadtest: other processes on this machine took $other during the sweep" \
  "(the more, the noisier the figures)"
if [ "$failed" != 0 ]; then
  echo "loadtest: FAIL: some points had errors (see above and $out/points/)" >&2
  exit 1
fi
