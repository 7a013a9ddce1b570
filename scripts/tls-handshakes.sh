#!/usr/bin/env bash
# Server CPU per full TLS 1.3 handshake: saythat against nginx, same certificate, same run.
#
#   scripts/tls-handshakes.sh [--duration SECS] [--rounds N] [--conns N]
#
# Both serve HTTPS on loopback with one ECDSA P-256 certificate from scripts/tls-cert.sh:
# `saythat serve --framing http --tls-cert`, and nginx (one worker, `ssl_protocols TLSv1.2
# TLSv1.3`, answering each GET with a fixed 200 from `return`, no file read, no access log; its
# config is written to a temporary directory and it runs in the foreground, `daemon off`, on a free
# loopback port). The load is `saythat load --tls --reconnect 1 --framing http --method get`: every
# connection makes a full handshake (the client resumes no session), one GET, and closes. The
# servers take turns, ROUNDS times each (default 3) for SECS seconds (default 5), so noise on a
# shared machine hits both alike. A server's CPU is utime+stime from /proc/PID/stat (nginx: the
# master and its worker) before and after each run, divided by the handshakes the run completed
# (the load report's `handshakes`): the accept, the handshake, one request and its answer, the
# close. With 2 cores or more the servers run on CPU 0 and the load on CPU 1.
#
# The key exchange is whatever the client and each server agree on: rustls's client offers
# X25519MLKEM768 (post-quantum hybrid, rustls's `prefer-post-quantum` default) first and X25519;
# rustls (saythat, its default provider) takes the hybrid, OpenSSL 3.0 (nginx 1.22 on Debian 12)
# has no ML-KEM and takes X25519: saythat's handshakes do the ML-KEM work on top.
#
# Needs: openssl (apt-get install openssl), nginx (apt-get install nginx-light or nginx; only the
# binary is used, its own config and service are left alone), python3 (a free port), and a
# saythat with `load --tls` (SAYTHAT_LOAD_BIN may name another build of it). Loopback only; runs
# about 2 x ROUNDS x SECS seconds plus the build; the servers stop on exit, Ctrl-C included.
# Exits 1 if a run had errors or a server died, 2 on a bad option or a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() {
  sed -n '4p' "$0" | sed 's/^# *//; s/^/usage: /'
}
duration=5
rounds=3
conns=10
while [ $# -gt 0 ]; do
  case $1 in
    --duration | --rounds | --conns)
      [ $# -ge 2 ] || { echo "tls-handshakes: $1 needs a value" >&2; usage >&2; exit 2; }
      case $1 in
        --duration) duration=$2 ;;
        --rounds) rounds=$2 ;;
        --conns) conns=$2 ;;
      esac
      shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "tls-handshakes: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$duration" "$rounds" "$conns"; do
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 600 ] || {
    echo "tls-handshakes: --duration, --rounds and --conns take a whole number from 1 to 600" >&2
    exit 2
  }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || {
  echo "tls-handshakes: nginx is not installed (apt-get install nginx-light): it is the reference" >&2
  exit 2
}
command -v openssl >/dev/null || { echo "tls-handshakes: needs openssl (apt-get install openssl)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "tls-handshakes: needs python3 (apt-get install python3)" >&2; exit 2; }

echo "tls-handshakes: building (release)"
cargo build --release --quiet --bin saythat
bin=$(release_dir)/saythat
load_bin=${SAYTHAT_LOAD_BIN:-$bin}
"$load_bin" load --help | grep -q -- '--reconnect' && "$load_bin" load --help | grep -q -- '--tls-ca' || {
  echo "tls-handshakes: $load_bin has no load --tls --reconnect; build one that has (SAYTHAT_LOAD_BIN)" >&2
  exit 2
}
pin_cores load

dir=$(mktemp -d /tmp/saythat-handshakes.XXXXXX)
declare -A pid
cleanup() {
  stop_servers
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/tls-cert.sh "$dir/tls" >/dev/null
prefix='You say that '

# saythat, HTTP framing over TLS.
"${on_server[@]}" "$bin" serve --listen 127.0.0.1:0 --framing http --prefix "$prefix" \
  --tls-cert "$dir/tls/server.pem" --tls-key "$dir/tls/server.key" 2>"$dir/saythat.log" &
pid[saythat]=$!
saythat_addr=$(listen_addr "$dir/saythat.log")

# nginx: one worker, the same certificate, a fixed answer that `saythat load` checks as it checks
# saythat's (the prefix and the path after its `/`).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$dir/nginx/logs"
cat >"$dir/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fastcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $dir/tls/server.pem;
    ssl_certificate_key $dir/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    default_type "text/plain; charset=utf-8";
    location ~ ^/(.*)\$ { return 200 "$prefix\$1"; }
  }
}
EOF
"${on_server[@]}" "$nginx_bin" -p "$dir/nginx" -e "$dir/nginx/logs/error.log" \
  -c "$dir/nginx/nginx.conf" 2>"$dir/nginx.log" &
pid[nginx]=$!
nginx_addr=127.0.0.1:$port
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
  echo "tls-handshakes: nginx did not start:" >&2
  cat "$dir/nginx.log" "$dir/nginx/logs/error.log" >&2
  exit 1
}

# ticks PID...: utime + stime of the processes, in clock ticks.
ticks() {
  local t=0 p
  for p in "$@"; do
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
  done
  echo "$t"
}
field() { sed 's/,"first_errors".*//; s/.*"'"$1"'":\([^,}]*\).*/\1/' "$2"; }
nginx_pids() { echo "${pid[nginx]} $(pgrep -P "${pid[nginx]}" | tr '\n' ' ')"; }

declare -A total_ticks total_handshakes
failed=0
echo "tls-handshakes: $rounds rounds of ${duration}s per server, $conns connections," \
  "--reconnect 1; $machine"
for round in $(seq "$rounds"); do
  for server in saythat nginx; do
    if [ "$server" = saythat ]; then a=$saythat_addr; procs=${pid[saythat]}; else a=$nginx_addr; procs=$(nginx_pids); fi
    json=$dir/$server-$round.json
    # shellcheck disable=SC2086 # procs is a list of pids
    t0=$(ticks $procs)
    rc=0
    "${on_load[@]}" "$load_bin" load --addr "$a" --tls --tls-ca "$dir/tls/ca.pem" --reconnect 1 \
      --framing http --method get --size 16 --conns "$conns" --prefix "$prefix" \
      --duration "$duration" --warmup 0 --json >"$json" 2>"$dir/load.err" || rc=$?
    # shellcheck disable=SC2086
    t1=$(ticks $procs)
    for p in $procs; do
      kill -0 "$p" 2>/dev/null || { echo "tls-handshakes: FAIL: $server died" >&2; exit 1; }
    done
    hs=$(field handshakes "$json" 2>/dev/null || echo 0)
    errors=$(field errors "$json" 2>/dev/null || echo "?")
    if [ "$rc" != 0 ] || [ "$errors" != 0 ] || ! [[ $hs =~ ^[0-9]+$ ]] || [ "$hs" = 0 ]; then
      echo "tls-handshakes: FAIL: $server round $round: exit $rc, errors $errors:" >&2
      cat "$dir/load.err" >&2
      failed=1
      continue
    fi
    total_ticks[$server]=$((${total_ticks[$server]:-0} + t1 - t0))
    total_handshakes[$server]=$((${total_handshakes[$server]:-0} + hs))
    awk -v s="$server" -v r="$round" -v t=$((t1 - t0)) -v hz="$clk_tck" -v n="$hs" \
      -v p50="$(field handshake_p50_us "$json")" 'BEGIN {
      printf "  round %d %-8s %7d handshakes  %6.0f/s  client p50 %5s us  server cpu %6.1f us/handshake\n",
        r, s, n, n / '"$duration"', p50, t * 1e6 / hz / n }'
  done
done
[ "$failed" = 0 ] || { echo "tls-handshakes: FAIL: some runs had errors" >&2; exit 1; }
awk -v st="${total_ticks[saythat]}" -v sn="${total_handshakes[saythat]}" \
  -v nt="${total_ticks[nginx]}" -v nn="${total_handshakes[nginx]}" -v hz="$clk_tck" 'BEGIN {
  s = st * 1e6 / hz / sn; n = nt * 1e6 / hz / nn
  printf "tls-handshakes: server CPU per full TLS 1.3 handshake (P-256 certificate, with one GET):\n"
  printf "  saythat %.1f us (%d handshakes)\n  nginx   %.1f us (%d handshakes)\n  saythat / nginx %.2f (target <= 0.70)\n",
    s, sn, n, nn, s / n }'
