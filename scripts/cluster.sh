#!/usr/bin/env bash
# A rolling restart behind HAProxy that loses no client, measured: three release `saythat serve`
# backends (line framing) on 127.0.0.2, .3 and .4 behind HAProxy 2.6 in TCP mode on 127.0.0.1,
# with contrib/haproxy.cfg as it is (`retries 0`, the /healthz HTTP check and the agent check),
# on free loopback ports.
#
#   scripts/cluster.sh [--no-drain] [SECONDS]        (default 30)
#
# For SECONDS, two `saythat load` runs go through HAProxy, every answer checked: 100 churning
# connections (each reopened after 50 messages) flat out, and 10 long-lived connections at 20
# messages/s in all. Meanwhile each backend in turn gets SIGTERM (it stays a lame duck for
# --drain-delay, sized from the config's checks, while its health checks say draining), is waited
# for, started again, and waited for until HAProxy's `show stat` says UP. Then one backend is
# killed with SIGKILL under load: the clients on it fail until HAProxy marks it DOWN; a short load
# after that must see no error. Prints each restart's timeline (when the agent drained the server,
# when the HTTP check marked it DOWN), the load runs' counts, HAProxy's per-server counters
# (`econ` connect errors, `wretr` retries, `wredis` redispatches) and last a line
#   rolling_restart errors=N wrong=N connect_failures=N msgs=N
# Exits 0 only if the rolling restart cost no client anything (with `retries 0`, nothing hidden)
# and the load after the kill saw no error; 1 otherwise, saying what failed; 2 on a bad argument.
#
# --no-drain runs the backends as saythat did before issue 11 (no --drain-delay, no agent): the
# refusals the lame duck removes, for comparison; it is expected to fail. DRAIN_DELAY=SECS
# replaces the --drain-delay sized from the checks, to see what a shorter one costs.
#
# Needs haproxy and socat (apt-get install haproxy socat), and python3. Loopback only; bounded
# (about SECONDS + 20 s plus the build); every process is stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

usage() {
  cat <<'EOF'
usage: scripts/cluster.sh [--no-drain] [SECONDS]
  SECONDS     length of the load runs the rolling restart happens under, 20 to 600 (default 30)
  --no-drain  backends without --drain-delay and --agent-listen (before issue 11), to compare
EOF
}

seconds=30
drain=1
while [ $# -gt 0 ]; do
  case $1 in
    --no-drain) drain=0; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "cluster: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) seconds=$1; shift ;;
  esac
done
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 20 ] || [ "$seconds" -gt 600 ]; then
  echo "cluster: SECONDS must be a whole number from 20 to 600, not $seconds" >&2; usage >&2; exit 2
fi

missing=
for tool in haproxy socat python3; do command -v "$tool" >/dev/null || missing+=" $tool"; done
[ -z "$missing" ] || {
  echo "cluster.sh needs$missing: apt-get install haproxy socat python3" >&2; exit 1; }

cfg=contrib/haproxy.cfg
[ -f "$cfg" ] || { echo "cluster: $cfg is missing" >&2; exit 1; }
# The point is that nothing is hidden by retries: refuse a config that retries or redispatches.
if ! grep -Eq '^[[:space:]]*retries[[:space:]]+0[[:space:]]*$' "$cfg" ||
  grep -Eq '^[[:space:]]*option[[:space:]]+redispatch' "$cfg"; then
  echo "cluster: $cfg must say \`retries 0\` and no \`option redispatch\`: with retries HAProxy" \
    "hides refused connections and this test would prove nothing" >&2; exit 1
fi

# ms VALUE: an HAProxy time (ms by default, or with a unit us, ms, s, m) in milliseconds.
ms() {
  awk -v t="$1" 'BEGIN {
    if (match(t, /^[0-9]+/) == 0) exit 1
    n = substr(t, 1, RLENGTH); u = substr(t, RLENGTH + 1)
    if (u == "" || u == "ms") print n; else if (u == "s") print n * 1000
    else if (u == "m") print n * 60000; else if (u == "us") print int(n / 1000); else exit 1 }'
}
# server_param NAME: the value after NAME on the config's default-server lines.
server_param() {
  awk -v k="$1" '$1 == "default-server" { for (i = 2; i < NF; i++) if ($i == k) print $(i + 1) }' "$cfg"
}
inter_ms=$(ms "$(server_param inter)") || inter_ms=
fall=$(server_param fall)
rise=$(server_param rise)
if ! [[ $inter_ms =~ ^[0-9]+$ && $fall =~ ^[0-9]+$ && $rise =~ ^[0-9]+$ ]]; then
  echo "cluster: the default-server lines of $cfg need \`inter TIME\`, \`fall N\` and \`rise N\`:" \
    "the lame duck is sized from them" >&2
  exit 1
fi
# HAProxy marks a server DOWN within fall x inter of the first failing check, and the check in
# progress when the signal comes may still pass: the lame duck lasts at least (fall + 1) x inter.
drain_delay=${DRAIN_DELAY:-$(((((fall + 1) * inter_ms) + 999) / 1000))}
[[ $drain_delay =~ ^[0-9]+$ ]] || { echo "cluster: DRAIN_DELAY takes whole seconds" >&2; exit 2; }
# How long a drain may take once the listener is closed: the long-lived clients are idle between
# messages, so a drain that closes at message boundaries needs a fraction of this.
shutdown_timeout=5
# Bounds of each wait: a check round trip is well under a second on loopback.
up_within=$(((rise + 2) * inter_ms / 1000 + 5))
down_within=$(((fall + 2) * inter_ms / 1000 + 3))

cargo build --release --quiet --bin saythat
bin=$(release_dir)/saythat
if [ "$drain" = 1 ]; then
  help=$("$bin" serve --help)
  for flag in --drain-delay --agent-listen; do
    grep -q -- "$flag" <<<"$help" || {
      echo "cluster: $bin has no $flag: this saythat predates the lame duck of issue 11 (branch" \
        "lameduck). Build one that has it, or run scripts/cluster.sh --no-drain to measure" \
        "today's behaviour" >&2
      exit 1
    }
  done
fi
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
haproxy_pid=
pids=()
loads=()
cleanup() {
  # SIGKILL for the backends: SIGTERM would start a lame duck of --drain-delay.
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${loads[@]}" $haproxy_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free ports: one for the frontend on 127.0.0.1, and for the echo, /healthz and agent ports one
# each that is free on all three backend addresses (each backend listens on its own address and
# the same ports, as on separate hosts). All are held until all are chosen, so none repeats.
read -r fe_port echo_port health_port agent_port < <(python3 - <<'PY'
import socket
held, ports = [], []
def pick(hosts):
    while True:
        first = socket.socket()
        first.bind((hosts[0], 0))
        port, group = first.getsockname()[1], [first]
        try:
            for h in hosts[1:]:
                s = socket.socket()
                group.append(s)
                s.bind((h, port))
        except OSError:
            for s in group:
                s.close()
            continue
        held.extend(group)
        return port
ports.append(pick(["127.0.0.1"]))
for _ in range(3):
    ports.append(pick(["127.0.0.2", "127.0.0.3", "127.0.0.4"]))
for s in held:
    s.close()
print(*ports)
PY
)
host=(- 127.0.0.2 127.0.0.3 127.0.0.4)
sock=$work/haproxy.sock
frontend=127.0.0.1:$fe_port

# start_backend I: starts backend sI (again) and waits until it listens; its pid in pids[I].
generation=(0 0 0 0)
start_backend() {
  local i=$1 log
  generation[i]=$((generation[i] + 1))
  log=$work/s$i.${generation[i]}.log
  local args=(serve --framing line --listen "${host[i]}:$echo_port"
    --metrics-listen "${host[i]}:$health_port" --shutdown-timeout "$shutdown_timeout")
  [ "$drain" = 1 ] && args+=(--agent-listen "${host[i]}:$agent_port" --drain-delay "$drain_delay")
  "$bin" "${args[@]}" 2>"$log" &
  pids[i]=$!
  listen_addr "$log" >/dev/null || { echo "cluster: backend s$i did not start" >&2; return 1; }
}

# alive PID: whether PID runs (a child that exited stays a zombie until waited for).
alive() {
  local state
  { read -r _ _ state _ <"/proc/$1/stat"; } 2>/dev/null || return 1
  [ "$state" != Z ]
}

# show_stat: HAProxy's `show stat` CSV, the header line without its `# `.
show_stat() { echo "show stat" | socat -t 2 - "UNIX-CONNECT:$sock" | sed '1s/^# //'; }
# server_status I: the status HAProxy reports for server sI (UP, DOWN, DRAIN (agent), UP 1/2
# ...), or `?` when the admin socket did not answer.
server_status() {
  local st
  st=$(show_stat | awk -F, -v sv="s$1" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "saythat" && $2 == sv { print $col["status"] }') || true
  echo "${st:-?}"
}
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# wait_up I: waits until HAProxy reports sI UP, or fails after up_within seconds with not_up.
wait_up() {
  local i=$1 st='' deadline=$((SECONDS + up_within))
  while st=$(server_status "$i") && [ "$st" != UP ]; do
    [ "$SECONDS" -lt "$deadline" ] || { not_up "$i" "$st"; return 1; }
    sleep 0.05
  done
}

# not_up I STATUS: says that HAProxy did not report sI UP within up_within seconds, what it
# reports instead, and why when the reason is known.
not_up() {
  echo "cluster: HAProxy did not report s$1 UP within ${up_within}s: it says '$2'" >&2
  if [[ $2 == DRAIN* ]]; then
    echo "cluster: HAProxy keeps an agent's \`drain\` until an agent answers \`ready\`: the" \
      "restarted saythat's --agent-listen must answer \`up ready\` (or \`ready\`), not only \`up\`" >&2
  fi
  show_stat | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "saythat" && $2 ~ /^s[0-9]/ {
      print "  " $2 ": " $col["status"] "; check " $col["check_status"] " (" $col["check_desc"] \
        "); agent " $col["agent_status"] " (" $col["agent_desc"] ")" }' >&2
}

# counters: HAProxy's per-server counters, as a table.
counters() {
  show_stat | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
      printf "  %-8s %-14s %7s %5s %6s %6s %7s %8s %8s %9s\n", "server", "status", "sessions",
        "econ", "eresp", "wretr", "wredis", "chkfail", "chkdown", "downtime"; next }
    $1 == "saythat" && $2 != "FRONTEND" {
      printf "  %-8s %-14s %7s %5s %6s %6s %7s %8s %8s %8ss\n", $2, $col["status"],
        $col["stot"], $col["econ"] + 0, $col["eresp"] + 0, $col["wretr"] + 0, $col["wredis"] + 0,
        $col["chkfail"] + 0, $col["chkdown"] + 0, $col["downtime"] + 0 }'
}

# load NAME SECS WARMUP ARGS...: a `saythat load` through HAProxy in the background, its JSON
# report in $work/NAME.json.
load() {
  local name=$1 secs=$2 warm=$3
  shift 3
  "$bin" load --addr "$frontend" --framing line --size 64 --duration "$secs" --warmup "$warm" \
    --json "$@" >"$work/$name.json" 2>"$work/$name.err" &
  loads+=($!)
}
# wait_loads: waits for the load runs started with `load`; a run that printed no report fails.
wait_loads() {
  for pid in "${loads[@]}"; do wait "$pid" || true; done
  loads=()
}
churn=(--conns 100 --reconnect 50)
long_lived=(--conns 10 --rate 20)

# Fails with the logs that tell why. HAProxy's log (stdout) has the servers' state changes; its
# stderr repeats them as warnings, so only its alerts are shown from there.
die() {
  echo "cluster: FAIL: $*" >&2
  grep -v '^\[WARNING\]' "$work/haproxy.err" >"$work/haproxy.alerts" 2>/dev/null || true
  rm -f "$work/haproxy.err"
  for log in "$work"/haproxy.alerts "$work"/haproxy.log "$work"/s*.log "$work"/*.err; do
    [ -s "$log" ] && { echo "== $log" >&2; tail -n 15 "$log" >&2; }
  done
  exit 1
}

for i in 1 2 3; do start_backend "$i" || die "backend s$i did not start"; done
SAYTHAT_LB_SOCKET=$sock SAYTHAT_LB_BIND=$frontend SAYTHAT_LB_HEALTH_PORT=$health_port \
  SAYTHAT_LB_AGENT_PORT=$agent_port SAYTHAT_LB_S1=${host[1]}:$echo_port \
  SAYTHAT_LB_S2=${host[2]}:$echo_port SAYTHAT_LB_S3=${host[3]}:$echo_port \
  haproxy -db -f "$cfg" >"$work/haproxy.log" 2>"$work/haproxy.err" &
haproxy_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && echo "show info" | socat - "UNIX-CONNECT:$sock" >/dev/null 2>&1 && break
  alive "$haproxy_pid" || die "haproxy exited at start"
  sleep 0.1
done
[ -S "$sock" ] || die "haproxy's admin socket did not appear within 10 s"
for i in 1 2 3; do wait_up "$i" || die "s$i never came UP"; done

if [ "$drain" = 1 ]; then
  how="--drain-delay $drain_delay, --agent-listen"
else
  how="no --drain-delay, no agent (--no-drain)"
fi
echo "cluster: HAProxy on $frontend ($cfg: retries 0, httpchk /healthz inter ${inter_ms}ms" \
  "fall $fall rise $rise, agent-check), backends ${host[1]} ${host[2]} ${host[3]} port" \
  "$echo_port, $how, --shutdown-timeout $shutdown_timeout"

# ---- The rolling restart, under both loads.
echo "== rolling restart under ${seconds}s of load: churn (${churn[*]}) and long-lived (${long_lived[*]})"
load_start=$SECONDS
load churn "$seconds" 1 "${churn[@]}"
load long_lived "$seconds" 1 "${long_lived[@]}"
sleep 2
for i in 1 2 3; do
  t0=$(now)
  drained='' down='' st=
  kill -TERM "${pids[i]}"
  deadline=$((SECONDS + drain_delay + shutdown_timeout + 5))
  while alive "${pids[i]}"; do
    [ "$SECONDS" -lt "$deadline" ] || die "s$i did not exit within $((drain_delay + shutdown_timeout + 5))s of SIGTERM"
    st=$(server_status "$i")
    [[ -z $drained && $st == DRAIN* ]] && drained=$(since "$t0")
    [[ -z $down && $st == DOWN* ]] && down=$(since "$t0")
    sleep 0.05
  done
  exited=$(since "$t0")
  rc=0
  wait "${pids[i]}" || rc=$?
  t1=$(now)
  start_backend "$i" || die "s$i did not start again"
  deadline=$((SECONDS + up_within))
  # Until it is UP again: the check may mark it DOWN only now, once the process is gone.
  while st=$(server_status "$i") && [ "$st" != UP ]; do
    [[ -z $drained && $st == DRAIN* ]] && drained=$(since "$t0")
    [[ -z $down && $st == DOWN* ]] && down=$(since "$t0")
    [ "$SECONDS" -lt "$deadline" ] || { not_up "$i" "$st"; die "s$i did not come back UP"; }
    sleep 0.05
  done
  # What the drain found and what --shutdown-timeout cut, from saythat's log.
  log=$work/s$i.$((generation[i] - 1)).log
  left=$(grep -o 'draining [0-9]* connection' "$log" | grep -o '[0-9]*' || echo 0)
  cut=$(grep -o '[0-9]* cut at shutdown' "$log" | grep -o '^[0-9]*' || echo '?')
  echo "  s$i: SIGTERM; agent drain seen after ${drained:-(never)}s, HTTP check DOWN after" \
    "${down:-(never)}s; $left connections left at the drain, $cut cut at --shutdown-timeout;" \
    "exited $rc after ${exited}s; started again, UP $(since "$t1")s later"
  [ "$rc" = 0 ] || die "s$i exited $rc after SIGTERM"
done
restart_took=$((SECONDS - load_start))
wait_loads
# Failures the load reports do not show, for the verdict.
failed=()
[ "$restart_took" -lt "$seconds" ] || failed+=("the rolling restart took ${restart_took}s, as long as \
the ${seconds}s of load, so part of it went unmeasured: run scripts/cluster.sh $((restart_took + 10))")
echo "HAProxy, after the rolling restart:"
counters
echo "clear counters all" | socat - "UNIX-CONNECT:$sock" >/dev/null

# ---- kill -9 of one backend under load, then a load once HAProxy has marked it DOWN.
down_bound=$(((fall + 1) * inter_ms / 1000 + 1))
kill_run=$((down_bound + 3))
echo "== kill -9 of s2 under ${kill_run}s of load (same two loads)"
load kill_churn "$kill_run" 0.5 "${churn[@]}"
load kill_long_lived "$kill_run" 0.5 "${long_lived[@]}"
sleep 1.5
t0=$(now)
kill -KILL "${pids[2]}"
wait "${pids[2]}" 2>/dev/null || true
deadline=$((SECONDS + down_within))
until [[ $(server_status 2) == DOWN* ]]; do
  [ "$SECONDS" -lt "$deadline" ] || die "HAProxy did not mark s2 DOWN within ${down_within}s of its kill"
  sleep 0.05
done
echo "  s2: killed; HTTP check DOWN after $(since "$t0")s"
wait_loads
echo "== 3s of load with s2 DOWN"
load after_kill 3 0.5 "${churn[@]}"
load after_kill_long_lived 3 0.5 "${long_lived[@]}"
wait_loads
t1=$(now)
start_backend 2 || die "s2 did not start again"
wait_up 2 || die "s2 did not come back UP after the kill"
echo "  s2: started again, UP $(since "$t1")s later"
echo "HAProxy, after the kill (counters cleared after the rolling restart):"
counters

# ---- The verdict.
python3 - "$work" "$drain" "${failed[@]}" <<'PY'
import json, sys
work, drain = sys.argv[1], sys.argv[2] == "1"
def run(name):
    try:
        with open(f"{work}/{name}.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        err = open(f"{work}/{name}.err").read().strip()
        sys.exit(f"cluster: FAIL: the load run {name} printed no report: {err}")
def show(label, r):
    print(f"  {label:<28} msgs {r['messages']:>8}  errors {r['errors']} ({r['wrong']} wrong, "
          f"{r['timeouts']} timeouts, {r['closed_early']} closed early, {r['not_sent']} not "
          f"sent)  closed idle {r['closed_idle']}  connect failures {r['connect_failures']}  "
          f"reconnects {r['reconnects']}  p99 {r['latency_p99_us'] / 1000:.2f} ms")
    for e in r["first_errors"][:3]:
        print(f"  {'':<28} {e}")
runs = {n: run(n) for n in ("churn", "long_lived", "kill_churn", "kill_long_lived",
                            "after_kill", "after_kill_long_lived")}
print("load through HAProxy:")
show("rolling restart, churn", runs["churn"])
show("rolling restart, long-lived", runs["long_lived"])
show("kill -9, churn", runs["kill_churn"])
show("kill -9, long-lived", runs["kill_long_lived"])
show("after DOWN, churn", runs["after_kill"])
show("after DOWN, long-lived", runs["after_kill_long_lived"])
rr = [runs["churn"], runs["long_lived"]]
total = {k: sum(r[k] for r in rr) for k in ("errors", "wrong", "connect_failures", "messages")}
failures = sys.argv[3:]
if total["errors"] or total["connect_failures"]:
    failures.append(f"the rolling restart cost clients {total['errors']} errors and "
                    f"{total['connect_failures']} connect failures with retries 0")
ll = runs["long_lived"]
cut = ll["closed_early"] + ll["timeouts"]
if cut:
    failures.append(f"{cut} long-lived connections failed (a message unanswered, or refused)")
after = runs["after_kill"]["errors"] + runs["after_kill_long_lived"]["errors"]
if after:
    failures.append(f"{after} errors after HAProxy had marked the killed backend DOWN")
killed = runs["kill_churn"]["errors"] + runs["kill_long_lived"]["errors"]
print(f"kill -9: {killed} client errors until HAProxy marked it DOWN, {after} after")
if failures:
    print("cluster: FAIL: " + "; ".join(failures) + ("" if drain else
          " (expected with --no-drain: the refusals the lame duck removes)"))
else:
    print("cluster: ok: a rolling restart with no client error and nothing retried")
print(f"rolling_restart errors={total['errors']} wrong={total['wrong']} "
      f"connect_failures={total['connect_failures']} msgs={total['messages']}")
sys.exit(1 if failures else 0)
PY
