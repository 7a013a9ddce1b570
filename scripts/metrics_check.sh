#!/usr/bin/env bash
# Checks the /metrics scrape with Prometheus' own linter: starts a release `saythat serve` with
# --metrics-listen on free loopback ports, puts a short `saythat load` through it, scrapes
# /metrics, prints the scrape, and validates it with `promtool check metrics` (exit status is
# promtool's). Also checks /healthz.
#
#   scripts/metrics_check.sh [--framing chunk|line|http]
#
# Needs promtool, from Debian's `prometheus` package: apt-get install prometheus. Loopback only;
# the server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
framing=chunk
if [ "${1:-}" = --framing ]; then
  framing=${2:?metrics_check: --framing needs chunk, line or http}
fi
case $framing in chunk | line | http) ;; *) echo "metrics_check: unknown framing $framing" >&2; exit 2 ;; esac
command -v promtool >/dev/null || {
  echo "metrics_check.sh needs promtool: install Debian's prometheus package (apt-get install prometheus)" >&2
  exit 1
}
command -v curl >/dev/null || { echo "metrics_check.sh needs curl (apt-get install curl)" >&2; exit 1; }

cargo build --release --quiet --bin saythat
bin=$(release_dir)/saythat
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --framing "$framing" 2>"$work/server.log" &
server=$!
addr=$(listen_addr "$work/server.log")
metrics=
for _ in $(seq 100); do
  metrics=$(grep -o 'metrics on http://[^ ]*' "$work/server.log" | cut -d' ' -f3 || true)
  [ -n "$metrics" ] && break
  sleep 0.05
done
[ -n "$metrics" ] || { echo "no 'metrics on' line:" >&2; cat "$work/server.log" >&2; exit 1; }

if [ "$framing" = http ]; then
  # `saythat load` speaks chunk and line framing: HTTP gets 200 keep-alive GETs and one refusal.
  urls=()
  for i in $(seq 200); do urls+=("http://$addr/hello$i"); done
  curl -s "${urls[@]}" >/dev/null
  curl -s -H 'Host:' "http://$addr/no-host" >/dev/null
  echo "load: 200 GETs and one 400 with curl"
else
  pipeline=1
  [ "$framing" = line ] && pipeline=16
  "$bin" load --addr "$addr" --framing "$framing" --conns 20 --pipeline "$pipeline" \
    --warmup 0.5 --duration 2 >"$work/load.txt"
  echo "load: $(head -1 "$work/load.txt")"
fi

health=$(curl -s -o /dev/null -w '%{http_code}' "${metrics%/metrics}/healthz")
[ "$health" = 200 ] || { echo "/healthz answered $health, not 200" >&2; exit 1; }
curl -s -D "$work/head" "$metrics" >"$work/scrape"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$work/head" ||
  { echo "unexpected Content-Type:" >&2; cat "$work/head" >&2; exit 1; }
cat "$work/scrape"
echo "== promtool check metrics"
promtool check metrics <"$work/scrape"
echo "promtool: the scrape is valid"
