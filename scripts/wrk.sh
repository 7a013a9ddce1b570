#!/usr/bin/env bash
# HTTP load test: `saythat serve --framing http` against a minimal hyper server
# (examples/hyper_peer.rs, the same answers) under wrk, over loopback.
#
#   scripts/wrk.sh [--duration SECS] [--out DIR] [--peer-only]
#
# Points: keep-alive GET /Hello at 50 and 1000 connections, 16 pipelined GETs per connection at 50,
# and a 64-byte POST at 50; one wrk thread each. saythat and the peer take turns point by point,
# so machine noise hits both alike. With 2 cores or more the servers run on CPU 0 and wrk on
# CPU 1. Each server's CPU time (utime + stime from /proc/PID/stat) is read before and after each
# run and divided by the requests wrk completed. wrk does not check bodies, so each server's
# answers to one GET and one POST are checked with curl before the runs. No latency is given for
# the pipelined point: wrk times a pipelined batch as one request, and its percentiles then come
# out as zeros or nonsense (wg/wrk#236).
#
# Prints a table with the saythat/hyper ratios and writes DIR/wrk.csv and every wrk output to
# DIR/wrk/. Exits 1 if a server fails to start, answers wrongly or dies, or wrk reports non-2xx/3xx
# answers or socket errors; 2 on a bad option. Loopback only; every wrk run is bounded by -d
# (default: 8 runs of 3 s plus the build) and both servers are stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() {
  cat <<'EOF'
usage: scripts/wrk.sh [--duration SECS] [--out DIR] [--peer-only]
  --duration SECS  seconds per wrk run, a whole number (default 3)
  --out DIR        where results go (default results/)
  --peer-only      measure the hyper peer alone (until saythat serves --framing http)
EOF
}

duration=3
out=results
peer_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --duration | --out)
      [ $# -ge 2 ] || { echo "wrk.sh: $1 needs a value" >&2; usage >&2; exit 2; }
      case $1 in
        --duration) duration=$2 ;;
        --out) out=$2 ;;
      esac
      shift 2 ;;
    --peer-only) peer_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "wrk.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
# wrk takes whole seconds.
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ] || [ "$duration" -gt 600 ]; then
  echo "wrk.sh: --duration takes a whole number of seconds from 1 to 600" >&2
  exit 2
fi

for tool in wrk curl; do
  command -v "$tool" >/dev/null || {
    echo "wrk.sh needs $tool (apt-get install $tool)" >&2; exit 1; }
done

prefix='You say that '
# name, connections, requests pipelined per connection, wrk script ('-': none)
points=("get 50 1 -" "get 1000 1 -" "get_x16 50 16 pipeline.lua" "post64 50 1 post.lua")
servers=(saythat hyper)
[ "$peer_only" = 1 ] && servers=(hyper)

started=$SECONDS
echo "wrk.sh: building (release)"
cargo build --release --quiet --bin saythat --example hyper_peer
release=$(release_dir)
bin=$release/saythat
peer_bin=$release/examples/hyper_peer

# 1000 connections need more descriptors than the usual soft limit of 1024; the servers and wrk
# inherit this.
ulimit -n "$(ulimit -Hn)"
max_conns=1000
need_fds wrk.sh "$max_conns" || exit 1
pin_cores wrk

runs=$out/wrk
mkdir -p "$runs"
# Outputs of an earlier run (another server set, other points) would read as this run's.
rm -f "$runs"/*.txt "$runs"/*.log
csv=$out/wrk.csv
work=$(mktemp -d)

declare -A pid addr
cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: runs a server pinned to the server CPU; records its pid and address, or
# fails at once with its log if it exits before listening.
start() {
  local name=$1 log="$runs/$1.log" a=
  shift
  RUST_LOG=info "${on_server[@]}" "$@" 2>"$log" &
  pid[$name]=$!
  for _ in $(seq 200); do
    grep -q 'listening on' "$log" && break
    kill -0 "${pid[$name]}" 2>/dev/null || break
    sleep 0.05
  done
  if ! a=$(listen_addr "$log" 1 2>/dev/null); then
    echo "wrk.sh: $name did not start: $(printf "%q " "$@")" >&2
    cat "$log" >&2
    if [ "$name" = saythat ]; then
      echo "wrk.sh: hint: until saythat serves --framing http, measure the peer alone:" \
        "scripts/wrk.sh --peer-only" >&2
    fi
    exit 1
  fi
  addr[$name]=$a
}

for server in "${servers[@]}"; do
  case $server in
    saythat) start saythat "$bin" serve --listen 127.0.0.1:0 --framing http --prefix "$prefix" ;;
    hyper) start hyper "$peer_bin" 127.0.0.1:0 "$prefix" ;;
  esac
done

# 64 bytes of body, the same for the curl check and wrk.
body=$(printf '0123456789abcdef%.0s' 1 2 3 4)

# expect SERVER WHAT EXPECTED CURL_ARGS...: one request with curl; fails unless the answer is a
# 2xx whose body is exactly EXPECTED.
expect() {
  local server=$1 what=$2 expected=$3 got
  shift 3
  if ! got=$(curl -sS --fail --max-time 5 "$@"); then
    echo "wrk.sh: FAIL: $server: $what: curl failed (above)" >&2
    exit 1
  fi
  if [ "$got" != "$expected" ]; then
    echo "wrk.sh: FAIL: $server: $what: expected \"$expected\", got \"$got\"" >&2
    exit 1
  fi
}
for server in "${servers[@]}"; do
  expect "$server" "GET /Hello" "${prefix}Hello" "http://${addr[$server]}/Hello"
  expect "$server" "POST of 64 bytes" "$prefix$body" --data-binary "$body" "http://${addr[$server]}/"
done

# The standard wrk pipelining idiom: 16 requests built once, sent back to back by every request().
cat >"$work/pipeline.lua" <<'EOF'
init = function(args)
  local requests = {}
  for i = 1, 16 do
    requests[i] = wrk.format(nil, "/Hello")
  end
  pipelined = table.concat(requests)
end

request = function()
  return pipelined
end
EOF
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.path = "/"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

# utime and stime of a process in clock ticks: fields 14 and 15 of /proc/PID/stat, counted after
# the `(comm)` field, which may hold spaces.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }

# wrk_summary FILE: "requests req_per_s p50_us p99_us non2xx socket_errors" from wrk's --latency
# output; "-" for what is missing. Times come as 123.45us, 1.23ms, 1.00s or 1.00m.
wrk_summary() {
  awk '
    function us(t) {
      if (t ~ /us$/) return t + 0
      if (t ~ /ms$/) return t * 1000
      if (t ~ /m$/) return t * 60e6
      if (t ~ /s$/) return t * 1e6
      return "-"
    }
    /Latency Distribution/ { dist = 1; next }
    dist && $1 == "50%" { p50 = us($2) }
    dist && $1 == "99%" { p99 = us($2); dist = 0 }
    / requests in / { requests = $1 }
    /^Requests\/sec:/ { rate = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ {
      # Socket errors: connect 0, read 0, write 0, timeout 0
      for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(/,/, "", v); sock += v }
    }
    END {
      printf "%s %s %s %s %d %d\n", requests == "" ? "-" : requests, rate == "" ? "-" : rate,
        p50 == "" ? "-" : p50, p99 == "" ? "-" : p99, non2xx, sock
    }' "$1"
}

failed=0
echo "wrk.sh: ${#points[@]} points x ${#servers[@]} servers, ${duration}s each; $machine"
echo "server,point,conns,pipeline,duration_s,requests,req_per_s,p50_us,p99_us,non2xx,socket_errors,cpu_user_us_per_req,cpu_sys_us_per_req,cpu_us_per_req" >"$csv"
for point in "${points[@]}"; do
  read -r name conns pipeline script <<<"$point"
  for server in "${servers[@]}"; do
    p=${pid[$server]}
    txt=$runs/$server-$name-$conns.txt
    wrk_args=(-t1 -c"$conns" -d"${duration}s" --latency)
    [ "$script" != - ] && wrk_args+=(-s "$work/$script")
    read -r u0 s0 < <(cpu_ticks "$p")
    rc=0
    "${on_load[@]}" wrk "${wrk_args[@]}" "http://${addr[$server]}/Hello" >"$txt" 2>&1 || rc=$?
    read -r u1 s1 < <(cpu_ticks "$p" 2>/dev/null || echo "- -")
    if ! kill -0 "$p" 2>/dev/null; then
      echo "wrk.sh: FAIL: $server died during $name x $conns conns; its log:" >&2
      cat "$runs/$server.log" >&2
      exit 1
    fi
    read -r requests rate p50 p99 non2xx sockerr < <(wrk_summary "$txt")
    # wrk's percentiles are wrong under pipelining (see the top of this file).
    [ "$pipeline" != 1 ] && p50=- p99=-
    if [ "$rc" != 0 ] || ! [[ $requests =~ ^[0-9]+$ ]]; then
      echo "wrk.sh: FAIL: $server $name x $conns conns: wrk exited $rc without a summary:" >&2
      cat "$txt" >&2
      failed=1
      continue
    fi
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ]; then
      echo "wrk.sh: FAIL: $server $name x $conns conns: $non2xx non-2xx/3xx answers," \
        "$sockerr socket errors ($txt):" >&2
      grep -E 'Non-2xx|Socket errors' "$txt" >&2 || true
      failed=1
    fi
    cpu=$(awk -v u0="$u0" -v s0="$s0" -v u1="$u1" -v s1="$s1" -v hz="$clk_tck" \
      -v n="$requests" 'BEGIN {
        if (n == 0) { print ",,"; exit }
        u = (u1 - u0) * 1e6 / hz / n; s = (s1 - s0) * 1e6 / hz / n
        printf "%.3f,%.3f,%.3f", u, s, u + s }')
    echo "$server,$name,$conns,$pipeline,$duration,$requests,$rate,${p50/#-/},${p99/#-/},$non2xx,$sockerr,$cpu" >>"$csv"
    printf '  %-8s %-8s %5s conns  %9.0f req/s  p50 %8s us  p99 %8s us  cpu %s us/req\n' \
      "$server" "$name" "$conns" "$rate" "$p50" "$p99" "${cpu##*,}"
  done
done

# The table: one line per point, saythat beside the peer, with their ratios.
echo
awk -F, '
  NR == 1 { next }
  {
    k = $2 SUBSEP $3
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    rate[$1, k] = $7; p50[$1, k] = $8; p99[$1, k] = $9; cpu[$1, k] = $14
  }
  function us(t) { return t == "" ? "-" : sprintf("%.0f", t) }
  function side(s, k) {
    if (!((s, k) in rate)) return sprintf("%9s %8s %8s %8s", "-", "-", "-", "-")
    return sprintf("%9.0f %8s %8s %8s", rate[s, k], us(p50[s, k]), us(p99[s, k]), cpu[s, k])
  }
  function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
  END {
    printf "%-8s %5s | %-36s | %-36s | %s\n", "", "", "saythat", "hyper", "saythat / hyper"
    printf "%-8s %5s | %9s %8s %8s %8s | %9s %8s %8s %8s | %6s %7s\n", "point", "conns",
      "req/s", "p50us", "p99us", "cpu/req", "req/s", "p50us", "p99us", "cpu/req", "req/s", "cpu/req"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, part, SUBSEP)
      printf "%-8s %5s | %s | %s | %6s %7s\n", part[1], part[2], side("saythat", k),
        side("hyper", k), ratio(rate["saythat", k], rate["hyper", k]),
        ratio(cpu["saythat", k], cpu["hyper", k])
    }
    print "(latencies and CPU in microseconds; cpu/req: the server process'"'"'s user+system CPU"
    print " time per request wrk completed; no latency for pipelined points (wrk mis-times them);"
    print " ratios above 1 mean saythat answered more, or used more CPU per request)"
  }' "$csv"

echo "wrk.sh: $csv, wrk outputs in $runs/; total $((SECONDS - started)) s on $machine"
if [ "$failed" != 0 ]; then
  echo "wrk.sh: FAIL: some points had errors (see above and $runs/)" >&2
  exit 1
fi
