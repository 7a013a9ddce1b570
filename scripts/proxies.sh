#!/usr/bin/env bash
# saythat's HTTP mode behind the reverse proxies people test most, every answer compared byte for
# byte with what saythat must answer: a release `saythat serve --framing http --max-body 67108864`
# on a free loopback port, then on free loopback ports of their own
#   - nginx with contrib/nginx.conf: one front end with nginx's default buffering, one with
#     `proxy_request_buffering off; proxy_buffering off` (upstream `keepalive 16`,
#     `proxy_http_version 1.1`, `Connection ""`);
#   - HAProxy with contrib/haproxy-http.cfg (`mode http`, `option http-keep-alive`,
#     `http-reuse always`).
#
#   scripts/proxies.sh [--quick]
#
# Each request of the matrix (GET, HEAD, a percent-encoded path, OPTIONS, POSTs of 3,000 B, 2 MiB
# and 20 MiB with and without `Expect: 100-continue`, a chunked upload, 20 pipelined GETs on one
# connection, and a client that writes a whole 20 MiB body before it reads) goes to saythat
# directly and through each proxy. An answer is compared as its status and its body, de-chunked,
# with the one the request must get (the prefix and the body or the path); for HEAD, the status
# and Content-Length. Headers that proxies legitimately change (Date, Server, Connection,
# Keep-Alive, chunked instead of Content-Length) are not compared. curl and the socket clients
# give up after 20 s, so a hang is a failure, not a hang of this script.
#
# Prints a table (one row per request, one column per path: `ok`, or what differed, e.g.
# `timeout, cut at 4,194,304 B` or `status 502`) and last a line `proxies: N passed, M failed`
# (one per cell). Exits 0 when every cell is ok, 1 when one differs, 2 on a bad argument or a
# missing tool. --quick leaves out the three 20 MiB requests (each failure there costs 20 s).
#
# saythat's other settings come from its environment variables, as always (SAYTHAT_MAX_PENDING=...
# scripts/proxies.sh): the flags given here (--listen, --framing, --max-body, --prefix) win.
# PROXIES_KEEP=1 keeps the temp dir, with every server's log and curl's errors, to look into.
#
# Needs nginx, haproxy, curl and python3 (apt-get install nginx haproxy curl python3); tested with
# Debian 12's nginx 1.22, HAProxy 2.6 and curl 7.88. They run as the current user (nginx's workers
# as nobody under root), their pid, logs and temp files in a temp dir. Loopback only; every server
# is stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() {
  cat <<'EOF'
usage: scripts/proxies.sh [--quick]
  --quick  leave out the 20 MiB requests
EOF
}

quick=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "proxies: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

missing=
for tool in nginx haproxy curl python3 cargo; do command -v "$tool" >/dev/null || missing+=" $tool"; done
[ -z "$missing" ] || {
  echo "proxies.sh needs$missing: apt-get install nginx haproxy curl python3 (cargo: rustup.rs)" >&2
  exit 2
}

# What saythat puts before every answer (its default, passed explicitly: the expected answers
# are computed from it).
PREFIX='You say that '
# saythat's --max-body, and nginx's client_max_body_size in contrib/nginx.conf (64m): the largest
# request here is 20 MiB.
MAX_BODY=67108864
# How long one request may take, through the slowest path, before it counts as a hang.
MAX_TIME=20
MIB=1048576

echo "proxies: building (release)"
cargo build --release --quiet --bin saythat
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/release/saythat

work=$(mktemp -d)
# Run as root, nginx's workers are `nobody` (the `user` directive's default) and must reach their
# temp dirs in here: traversable by all, readable by none.
chmod 711 "$work"
declare -A pid
cleanup() {
  stop_servers
  # PROXIES_KEEP=1 keeps the logs (saythat's, nginx's error.log, HAProxy's, curl's) to look into.
  if [ "${PROXIES_KEEP:-0}" = 1 ]; then echo "proxies: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The socket clients and the comparisons, in python3 (curl cannot pipeline, nor hold back its
# reading until it has sent a whole body).
px=$work/px.py
cat >"$px" <<'PYTHON'
import select, socket, sys, time, urllib.parse

PREFIX = sys.argv[1].encode()


def pattern(size, path):
    """A body no shift can hide: lines of 16 bytes, each the offset it starts at."""
    with open(path, "wb") as f:
        step = 1 << 16  # lines per write
        for first in range(0, size // 16 + 1, step):
            f.write(b"".join(b"%015d\n" % (16 * i) for i in range(first, first + step)))
        f.truncate(size)


def free_ports(n):
    # Held together until all are chosen, so none repeats.
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in socks))


def wait_port(addr, seconds):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


def parse(buf):
    """The answers in buf as (status, body) pairs, interim 1xx ones left out, and whether the last
    is complete. Bodies are de-chunked; a cut one is kept as far as it came."""
    answers, at, complete = [], 0, True
    while at < len(buf):
        end = buf.find(b"\r\n\r\n", at)
        if end < 0:
            return answers, False
        lines = bytes(buf[at:end]).split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        at = end + 4
        if 100 <= status < 200:
            continue
        body = b""
        if status in (204, 304):
            pass
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                eol = buf.find(b"\r\n", at)
                if eol < 0:
                    complete = False
                    break
                size = int(bytes(buf[at:eol]).split(b";")[0], 16)
                at = eol + 2
                if size == 0:
                    trailer = buf.find(b"\r\n\r\n", at - 2)
                    complete = trailer >= 0
                    at = trailer + 4 if complete else len(buf)
                    break
                parts.append(bytes(buf[at:at + size]))
                if at + size + 2 > len(buf):
                    complete = False
                    at = len(buf)
                    break
                at += size + 2
            body = b"".join(parts)
        elif b"content-length" in headers:
            size = int(headers[b"content-length"])
            body = bytes(buf[at:at + size])
            complete = len(body) == size
            at += len(body)
        else:
            body, at, complete = bytes(buf[at:]), len(buf), False
        answers.append((status, body))
        if not complete:
            break
    return answers, complete


def exchange(addr, request, count):
    """Sends all of request before reading anything, then reads until count answers are in.
    Returns the answers and what went wrong, or None."""
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + MAX_TIME
    try:
        s = socket.create_connection((host, int(port)), timeout=MAX_TIME)
    except OSError as e:
        return [], "connect: " + e.strerror
    s.setblocking(False)
    sent, buf, fault = 0, bytearray(), None
    view = memoryview(request)
    while sent < len(request):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [s], [], left)[1]:
            fault = f"timeout, sent {sent:,} B"
            break
        try:
            sent += s.send(view[sent:sent + (1 << 20)])
        except BlockingIOError:
            pass
        except OSError as e:
            fault = "send: " + e.strerror
            break
    while fault is None:
        answers, complete = parse(buf)
        if len(answers) >= count and complete:
            break
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            fault = "timeout"
            break
        try:
            data = s.recv(1 << 20)
        except BlockingIOError:
            continue
        except OSError as e:
            fault = "recv: " + e.strerror
            break
        if not data:
            fault = "closed after %.0f s" % (MAX_TIME - (deadline - time.monotonic()))
            break
        buf += data
    s.close()
    return parse(buf)[0], fault


def body_diff(want, got):
    if want.startswith(got):
        return f"cut at {len(got):,} B"
    if got.startswith(want):
        return f"{len(got) - len(want):,} B extra"
    at = next(i for i, (a, b) in enumerate(zip(want, got)) if a != b)
    return f"differs at byte {at:,}"


def cell(want, got, fault):
    """`ok`, or what differed from the answers wanted."""
    if fault is None and got == want:
        return "ok"
    parts = [fault] if fault else []
    for i, (status, body) in enumerate(want):
        which = f"answer {i + 1}: " if len(want) > 1 else ""
        if i >= len(got):
            if len(want) > 1:
                parts.append(f"{i} of {len(want)} answers")
            elif not fault:  # a fault with no answer needs no "no answer"
                parts.append("no answer")
            break
        if got[i][0] != status:
            parts.append(f"{which}status {got[i][0]}")
            break
        if got[i][1] != body:
            parts.append(which + body_diff(body, got[i][1]))
            break
    else:
        if len(got) > len(want):
            parts.append(f"{len(got) - len(want)} answers extra")
    return ", ".join(parts)


def wanted(status, kind, arg):
    if kind == "echo":  # the prefix and the request body
        with open(arg, "rb") as f:
            return [(int(status), PREFIX + f.read())]
    if kind == "path":  # the prefix and the path, percent-decoded, without `/` and the query
        path = urllib.parse.urlsplit(arg).path.lstrip("/")
        return [(int(status), PREFIX + urllib.parse.unquote_to_bytes(path))]
    if kind == "head":  # what GET would answer, as its Content-Length
        path = urllib.parse.urlsplit(arg).path.lstrip("/")
        size = len(PREFIX + urllib.parse.unquote_to_bytes(path))
        return [(int(status), b"content-length: %d" % size)]
    return [(int(status), b"")]  # empty


def curl_answer(rc, code, seconds, path, head):
    """curl's answer as (status, body) pairs, and what went wrong (from its exit status)."""
    fault = None
    if rc == 28:
        fault = "timeout"
    elif rc != 0:
        what = {18: "closed", 52: "empty reply", 56: "recv failure"}.get(rc, f"curl exit {rc}")
        fault = f"{what} after {seconds:.0f} s"
    if code == 0:
        return [], fault
    with open(path, "rb") as f:
        body = f.read()
    if head:  # curl --head writes the head: keep its Content-Length
        length = [line.split(b":", 1)[1].strip() for line in body.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")]
        body = b"content-length: " + (length[-1] if length else b"none")
    return [(code, body)], fault


MAX_TIME = float(sys.argv[2])
command, args = sys.argv[3], sys.argv[4:]
if command == "pattern":
    pattern(int(args[0]), args[1])
elif command == "free-ports":
    free_ports(int(args[0]))
elif command == "wait-port":
    sys.exit(wait_port(args[0], args[1]))
elif command == "curl":  # RC "CODE SECONDS" ANSWER_FILE STATUS KIND ARG
    rc, written, path, status, kind, arg = args
    code, seconds = written.split()
    got, fault = curl_answer(int(rc), int(code), float(seconds), path, kind == "head")
    print(cell(wanted(status, kind, arg), got, fault))
elif command == "pipeline":  # ADDR COUNT: COUNT GETs in one write, then the answers
    addr, count = args[0], int(args[1])
    paths = ["/pipelined-%02d" % i for i in range(1, count + 1)]
    request = b"".join(b"GET %s HTTP/1.1\r\nHost: saythat\r\n\r\n" % p.encode() for p in paths)
    want = [wanted(200, "path", p)[0] for p in paths]
    print(cell(want, *exchange(addr, request, count)))
elif command == "write-all":  # ADDR BODY_FILE: the whole POST sent before a byte is read
    addr, path = args
    with open(path, "rb") as f:
        body = f.read()
    request = b"POST /upload HTTP/1.1\r\nHost: saythat\r\nContent-Length: %d\r\n\r\n" % len(body)
    print(cell(wanted(200, "echo", path), *exchange(addr, request + body, 1)))
else:
    sys.exit(f"px.py: unknown command {command}")
PYTHON
py() { python3 "$px" "$PREFIX" "$MAX_TIME" "$@"; }

# Bodies from a fixed pattern, so the echo each must get is known.
py pattern 3000 "$work/3000"
py pattern $((2 * MIB)) "$work/2MiB"
[ "$quick" = 1 ] || py pattern $((20 * MIB)) "$work/20MiB"

# start NAME LOG COMMAND...: runs a server in the background, its output to LOG.
start() {
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pid[$name]=$!
}
# ready NAME ADDR LOG: waits until NAME accepts on ADDR; fails with its log if it exits first
# or takes over 10 s.
ready() {
  if ! py wait-port "$2" 10 || ! kill -0 "${pid[$1]}" 2>/dev/null; then
    echo "proxies: $1 did not start on $2:" >&2
    cat "$3" >&2
    exit 1
  fi
}

RUST_LOG=info start saythat "$work/saythat.log" "$bin" serve --listen 127.0.0.1:0 --framing http \
  --max-body "$MAX_BODY" --prefix "$PREFIX"
saythat=$(listen_addr "$work/saythat.log")
read -r nginx_buffered_port nginx_streaming_port haproxy_port <<<"$(py free-ports 3)"

# nginx: contrib/nginx.conf with its three addresses replaced, in a prefix of its own.
ngx=$work/nginx
mkdir -p "$ngx"
for addr in 127.0.0.1:8080 127.0.0.1:8081 127.0.0.1:8082; do
  grep -q "$addr;" contrib/nginx.conf || {
    echo "proxies: contrib/nginx.conf has no $addr to replace" >&2; exit 1; }
done
sed -e "s/127\.0\.0\.1:8080;/$saythat;/" \
  -e "s/127\.0\.0\.1:8081;/127.0.0.1:$nginx_buffered_port;/" \
  -e "s/127\.0\.0\.1:8082;/127.0.0.1:$nginx_streaming_port;/" contrib/nginx.conf >"$ngx/nginx.conf"
nginx_args=(-p "$ngx" -e "$ngx/error.log" -c "$ngx/nginx.conf")
if ! nginx -t -q "${nginx_args[@]}" 2>"$work/nginx-t.log"; then
  echo "proxies: nginx refuses contrib/nginx.conf:" >&2; cat "$work/nginx-t.log" >&2; exit 1
fi
# In the foreground (no daemon), so its pid is the one to stop.
start nginx "$work/nginx.out" nginx "${nginx_args[@]}" -g 'daemon off;'

# HAProxy: contrib/haproxy-http.cfg as it is; its addresses come from the environment.
export SAYTHAT_HTTP_LB_BIND=127.0.0.1:$haproxy_port SAYTHAT_HTTP_LB_SERVER=$saythat
if ! haproxy -c -q -f contrib/haproxy-http.cfg 2>"$work/haproxy-c.log"; then
  echo "proxies: haproxy refuses contrib/haproxy-http.cfg:" >&2; cat "$work/haproxy-c.log" >&2
  exit 1
fi
start haproxy "$work/haproxy.out" haproxy -f contrib/haproxy-http.cfg

ready nginx "127.0.0.1:$nginx_buffered_port" "$ngx/error.log"
ready nginx "127.0.0.1:$nginx_streaming_port" "$ngx/error.log"
ready haproxy "127.0.0.1:$haproxy_port" "$work/haproxy.out"

columns=(direct "nginx buffered" "nginx unbuffered" haproxy)
addrs=("$saythat" "127.0.0.1:$nginx_buffered_port" "127.0.0.1:$nginx_streaming_port"
  "127.0.0.1:$haproxy_port")
echo "saythat $("$bin" --version | cut -d' ' -f2) on $saythat (--framing http --max-body $MAX_BODY)"
echo "$(nginx -v 2>&1 | sed 's/^nginx version: //') on :$nginx_buffered_port (buffered)" \
  "and :$nginx_streaming_port (unbuffered), $(haproxy -v | head -1 | cut -d' ' -f1-3) on" \
  ":$haproxy_port, $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "compared: status and de-chunked body (HEAD: status and Content-Length); not the headers" \
  "proxies change (Date, Server, Connection, Keep-Alive, chunked for Content-Length)"
echo

passed=0
failed=0
# emit LABEL CELL...: prints a row of the table and counts its cells.
emit() {
  local label=$1 c
  shift
  printf '| %-44s |' "$label"
  for c in "$@"; do
    printf ' %-30s |' "$c"
    if [ "$c" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  printf '\n'
}
# curl_row LABEL STATUS KIND ARG PATH CURL_ARG...: the request curl makes with CURL_ARG to PATH
# on each path, compared with STATUS and the body KIND and ARG make (see wanted() above).
curl_row() {
  local label=$1 status=$2 kind=$3 arg=$4 path=$5 addr rc written cells=()
  shift 5
  for addr in "${addrs[@]}"; do
    rc=0
    written=$(curl -sS --max-time "$MAX_TIME" -o "$work/answer" \
      -w '%{http_code} %{time_total}' "$@" "http://$addr$path" 2>>"$work/curl.log") || rc=$?
    cells+=("$(py curl "$rc" "${written:-0 0}" "$work/answer" "$status" "$kind" "$arg")")
    rm -f "$work/answer"
  done
  emit "$label" "${cells[@]}"
}
# socket_row LABEL COMMAND ARG...: a socket client's request on each path (see px.py).
socket_row() {
  local label=$1 command=$2 addr cells=()
  shift 2
  for addr in "${addrs[@]}"; do cells+=("$(py "$command" "$addr" "$@")"); done
  emit "$label" "${cells[@]}"
}

printf '| %-44s |' request
for c in "${columns[@]}"; do printf ' %-30s |' "$c"; done
printf '\n|%s|' "$(printf -- '-%.0s' $(seq 46))"
for _ in "${columns[@]}"; do printf '%s|' "$(printf -- '-%.0s' $(seq 32))"; done
printf '\n'

encoded='/caf%C3%A9/a%20b%2Fc?q=%2F'
no_expect=(-H 'Expect:')
expect=(-H 'Expect: 100-continue')
curl_row "GET /hello" 200 path /hello /hello
curl_row "HEAD /hello" 200 head /hello /hello --head
curl_row "GET $encoded" 200 path "$encoded" "$encoded"
curl_row "OPTIONS /hello" 204 empty - /hello -X OPTIONS
curl_row "POST 3,000 B" 200 echo "$work/3000" /upload "${no_expect[@]}" --data-binary "@$work/3000"
curl_row "POST 3,000 B, Expect: 100-continue" 200 echo "$work/3000" /upload "${expect[@]}" \
  --data-binary "@$work/3000"
curl_row "POST 2 MiB (curl adds Expect)" 200 echo "$work/2MiB" /upload --data-binary "@$work/2MiB"
curl_row "POST 2 MiB chunked (curl adds Expect)" 200 echo "$work/2MiB" /upload \
  -H 'Transfer-Encoding: chunked' --data-binary "@$work/2MiB"
if [ "$quick" = 0 ]; then
  curl_row "POST 20 MiB" 200 echo "$work/20MiB" /upload "${no_expect[@]}" \
    --data-binary "@$work/20MiB"
  curl_row "POST 20 MiB, Expect: 100-continue" 200 echo "$work/20MiB" /upload "${expect[@]}" \
    --data-binary "@$work/20MiB"
fi
socket_row "20 pipelined GETs, one connection" pipeline 20
if [ "$quick" = 0 ]; then
  socket_row "POST 20 MiB, all sent before reading" write-all "$work/20MiB"
fi

echo
echo "proxies: $passed passed, $failed failed"
[ "$failed" = 0 ]
