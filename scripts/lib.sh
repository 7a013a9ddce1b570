# Shared by the scripts in this folder (sourced, not run).

# release_dir: prints where cargo puts release builds, by cargo's own account (`cargo metadata`'s
# target_directory: CARGO_TARGET_DIR, a build.target-dir setting, or ./target), so a script runs
# the binary it just built wherever cargo put it. Parsed with python3: jq may not be installed.
release_dir() {
  local dir
  dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || {
    echo "cannot find cargo's target directory (cargo metadata failed)" >&2
    return 1
  }
  echo "$dir/release"
}

# whole_number NAME VALUE USAGE: a script's positional count (seconds, messages, connections)
# checked before anything is built or started: `-h`/`--help` prints USAGE and exits 0; anything
# but a whole number above 0 says so, prints USAGE and exits 2.
whole_number() {
  case $2 in
    -h | --help) echo "usage: $3"; exit 0 ;;
    '' | *[!0-9]* | 0)
      echo "${0##*/}: $1 must be a whole number above 0, not '$2'" >&2
      echo "usage: $3" >&2
      exit 2 ;;
  esac
}

# only_kind CHOICES ARGS...: the KIND of a leading `--only KIND` in ARGS, or nothing without
# one; a KIND that is not one of the space-separated CHOICES says which are, and exits 2 (call it
# as `only=$(only_kind "a b c" "$@") || exit 2`, then `[ -z "$only" ] || shift 2`).
only_kind() {
  local choices=$1
  shift
  [ "${1:-}" = --only ] || return 0
  if [ -n "${2:-}" ] && [[ " $choices " == *" $2 "* ]]; then
    echo "$2"
    return 0
  fi
  local listed=${choices// /, }
  echo "${0##*/}: --only takes ${listed%, *} or ${listed##*, }" >&2
  return 2
}

# per_message_points KIND: sets `points` to the per-message points of lib.sh's lists for KIND
# (echo, http or ws), or all of them for an empty KIND.
per_message_points() {
  case $1 in
    echo) points=("${PER_MESSAGE_POINTS[@]}") ;;
    http) points=("${HTTP_PER_MESSAGE_POINTS[@]}") ;;
    ws) points=("${WS_PER_MESSAGE_POINTS[@]}") ;;
    *) points=("${PER_MESSAGE_POINTS[@]}" "${HTTP_PER_MESSAGE_POINTS[@]}" "${WS_PER_MESSAGE_POINTS[@]}") ;;
  esac
}

# listen_addr LOG [SECONDS]: waits until a server's stderr LOG has a complete
# `listening on ADDR:PORT` line (the port's digits included: a line may be read half-written),
# prints ADDR:PORT, and fails after SECONDS (default 10) with the log on stderr.
listen_addr() {
  local log=$1 seconds=${2:-10} addr=
  local tries=$((seconds * 20))
  for _ in $(seq "$tries"); do
    addr=$(grep -o 'listening on [^ ]*:[0-9][0-9]*' "$log" 2>/dev/null | head -1 | cut -d' ' -f3)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    sleep 0.05
  done
  echo "the server did not start within ${seconds}s:" >&2
  cat "$log" >&2
  return 1
}

# server_command NAME FRAMING: sets the array SERVER_COMMAND to the release build of NAME
# serving FRAMING on a free loopback port with the default prefix: `saythat` (chunk, line, http,
# or ws: its `--framing http`, which a WebSocket enters by the upgrade), `tokio` for the peer of
# examples/tokio_peer.rs (chunk or line), `hyper` for the peer of examples/hyper_peer.rs (http
# only), `tungstenite` for the peer of examples/tungstenite_peer.rs (ws only), `rustls` for the
# peer of examples/hyper_rustls_peer.rs (tls_http or tls_chunk only). The TLS framings, tls_http
# and tls_chunk, are HTTP and chunk framing over TLS with the certificate in $TLS_DIR (made by
# scripts/tls-cert.sh).
server_command() {
  local release
  release=$(release_dir) || return 1
  case $1 in
    saythat)
      local serves=$2
      [ "$serves" = ws ] && serves=http
      SERVER_COMMAND=("$release/saythat" serve --listen 127.0.0.1:0 --framing "$serves")
      if [[ $serves == tls_* ]]; then
        SERVER_COMMAND[5]=${serves#tls_}
        SERVER_COMMAND+=(--tls-cert "$TLS_DIR/server.pem" --tls-key "$TLS_DIR/server.key")
      fi ;;
    tokio) SERVER_COMMAND=("$release/examples/tokio_peer" 127.0.0.1:0 'You say that ' "$2") ;;
    hyper)
      [ "$2" = http ] || { echo "the hyper peer serves http only, not $2" >&2; return 1; }
      SERVER_COMMAND=("$release/examples/hyper_peer" 127.0.0.1:0 'You say that ') ;;
    tungstenite)
      [ "$2" = ws ] || { echo "the tungstenite peer serves ws only, not $2" >&2; return 1; }
      SERVER_COMMAND=("$release/examples/tungstenite_peer" 127.0.0.1:0 'You say that ') ;;
    rustls)
      [[ $2 == tls_* ]] || { echo "the rustls peer serves tls_http or tls_chunk, not $2" >&2; return 1; }
      SERVER_COMMAND=("$release/examples/hyper_rustls_peer" 127.0.0.1:0 'You say that ' "${2#tls_}"
        "$TLS_DIR/server.pem" "$TLS_DIR/server.key") ;;
    *) echo "unknown server $1" >&2; return 1 ;;
  esac
}

# peer_of FRAMING: the peer saythat is compared with in FRAMING: tokio for the echo framings,
# hyper for http, tungstenite for ws, rustls (examples/hyper_rustls_peer.rs) for tls_http and
# tls_chunk.
peer_of() {
  case $1 in
    tls_*) echo rustls ;;
    http) echo hyper ;;
    ws) echo tungstenite ;;
    *) echo tokio ;;
  esac
}

# The per-message scripts' points: framing, message size, messages in flight.
PER_MESSAGE_POINTS=("chunk 64 1" "chunk 1024 1" "line 64 16")
# Their HTTP points, saythat against the hyper peer: framing, size (the GET path or the POST
# body), requests in flight, method.
HTTP_PER_MESSAGE_POINTS=("http 64 1 get" "http 64 16 get" "http 64 1 post")
# Their WebSocket points, saythat against the tokio-tungstenite peer: 64-byte binary messages,
# one and 16 in flight.
WS_PER_MESSAGE_POINTS=("ws 64 1" "ws 64 16")

# need_fds NAME CONNECTIONS: fails, saying how to fix it, when the descriptor limit cannot hold
# CONNECTIONS connections (plus some for the servers' own files).
need_fds() {
  local name=$1 conns=$2 fds
  fds=$(ulimit -n)
  if [ "$fds" != unlimited ] && [ "$fds" -lt $((conns + 200)) ]; then
    echo "$name: $conns connections need about $((conns + 200)) descriptors and the" \
      "hard limit is $fds; raise it (ulimit -Hn, limits.conf or LimitNOFILE)" >&2
    return 1
  fi
}

# pin_cores LOAD: sets on_server and on_load (taskset prefixes: the server on CPU 0, LOAD on
# CPU 1, when there are 2 cores or more), cores, machine (a line naming the CPU and the pinning)
# and clk_tck (for /proc/PID/stat times).
pin_cores() {
  local load=$1 cpu_model pinning
  cores=$(nproc)
  cpu_model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1)
  cpu_model=${cpu_model:-unknown CPU}
  if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
    on_server=(taskset -c 0)
    on_load=(taskset -c 1)
    pinning="servers on CPU 0, $load on CPU 1"
  else
    on_server=()
    on_load=()
    pinning="not pinned"
  fi
  machine="$cpu_model, $cores cores, $pinning"
  clk_tck=$(getconf CLK_TCK)
}

# stop_servers: stops every process in the associative array `pid` (the caller's servers) and
# waits for them: SIGTERM, up to 3 s for the drain, then a second SIGTERM, which ends it at once.
stop_servers() {
  local p left
  for p in "${pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # saythat serves its open connections for a while after SIGTERM; a second signal ends it at once.
  for _ in $(seq 30); do
    left=0
    for p in "${pid[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for p in "${pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
