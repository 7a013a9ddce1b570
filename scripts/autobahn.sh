#!/usr/bin/env bash
# The Autobahn|Testsuite's fuzzing client (the WebSocket conformance suite) against
# `saythat serve --framing http --prefix ''`, cases 1.* to 10.* (12.* and 13.* test
# permessage-deflate, which saythat does not offer), its verdicts reduced to
# {case: [behavior, behaviorClose]} and compared with tests/autobahn/expected.json.
#
#   scripts/autobahn.sh            run, print the counts, exit 1 on any changed verdict
#   scripts/autobahn.sh --update   run and write the verdicts to tests/autobahn/expected.json
#
# The suite is Python 2 only upstream; this runs the Python 3 port
# (github.com/ricardo-valero/autobahn-testsuite, Python 3.12 or newer), installed with pip into
# a virtual environment together with what it requires from PyPI (autobahn[twisted], twisted[tls],
# pyopenssl, service-identity, jinja2). CI cannot fetch it: CI runs tests/ws.rs instead.
#
# Environment:
#   AUTOBAHN_VENV     the virtual environment, made when missing (default /tmp/ab-venv)
#   AUTOBAHN_SRC      what pip installs the port from: a checkout or a pip URL
#                     (default git+https://github.com/ricardo-valero/autobahn-testsuite)
#   AUTOBAHN_PYTHON   the Python 3.12+ to make the venv with (default: the first found)
#   AUTOBAHN_TIMEOUT  seconds the whole run may take (default 900; it takes about a minute)
#   AUTOBAHN_REPORTS  a folder to copy the suite's reports to (index.json, per-case files)
#
# The port hangs once it has written reports/servers/index.json (or dies writing the per-case
# reports after it): the run is stopped as soon as that file is whole.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

update=
case ${1:-} in
  --update) update=1 ;;
  '') ;;
  *) echo "usage: scripts/autobahn.sh [--update]" >&2; exit 2 ;;
esac
venv=${AUTOBAHN_VENV:-/tmp/ab-venv}
src=${AUTOBAHN_SRC:-git+https://github.com/ricardo-valero/autobahn-testsuite}
limit=${AUTOBAHN_TIMEOUT:-900}
expected=tests/autobahn/expected.json

# find_python: a Python 3.12 or newer, the port's minimum.
find_python() {
  local candidates=() py
  [ -n "${AUTOBAHN_PYTHON:-}" ] && candidates+=("$AUTOBAHN_PYTHON")
  candidates+=(python3.14 python3.13 python3.12 python3)
  if command -v pyenv >/dev/null; then
    candidates+=("$(pyenv root)"/versions/3.1[2-9]*/bin/python3)
  fi
  for py in "${candidates[@]}"; do
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  echo "autobahn.sh: no Python 3.12 or newer found (the port needs one); install one or set" \
    "AUTOBAHN_PYTHON" >&2
  return 1
}

if [ ! -x "$venv/bin/wstest" ]; then
  python=$(find_python)
  echo "autobahn.sh: making $venv with $python; installing the Autobahn|Testsuite port from" \
    "$src and its requirements from PyPI (autobahn[twisted], twisted[tls], pyopenssl," \
    "service-identity, jinja2)"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet "$src" || {
    rm -rf "$venv"
    echo "autobahn.sh: pip could not install the port from $src (no network? set AUTOBAHN_SRC" \
      "to a checkout of github.com/ricardo-valero/autobahn-testsuite)" >&2
    exit 1
  }
fi

cargo build --release --quiet --bin saythat
bin=$(release_dir)/saythat
work=$(mktemp -d)
server= suite=
cleanup() {
  [ -n "$suite" ] && kill "$suite" 2>/dev/null
  [ -n "$server" ] && kill "$server" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" serve --framing http --prefix '' --listen 127.0.0.1:0 2>"$work/server.log" &
server=$!
addr=$(listen_addr "$work/server.log")

# The client's timeouts go through txaio's batched timer, which truncates the deadline to a
# whole second: the default 1 s close-handshake timeout fires anywhere from 0 to 1 s after the
# client's close, and on a busy machine cut a case whose close saythat answered in 4 ms
# (UNCLEAN, with saythat's close met by a reset). 10 s leaves 9 s at least.
cat >"$work/spec.json" <<EOF
{
  "options": {"failByDrop": false},
  "outdir": "$work/reports/servers",
  "servers": [{"agent": "saythat", "url": "ws://$addr",
               "options": {"closeHandshakeTimeout": 10, "serverConnectionDropTimeout": 10,
                           "openHandshakeTimeout": 10}}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
EOF

echo "autobahn.sh: cases 1.* to 10.* against saythat at ws://$addr (about a minute)"
(cd "$work" && exec "$venv/bin/wstest" -m fuzzingclient -s spec.json) >"$work/suite.log" 2>&1 &
suite=$!
index=$work/reports/servers/index.json
# index.json is written in one write once every case has run: whole when it parses.
deadline=$((SECONDS + limit))
until [ -s "$index" ] && "$venv/bin/python" -c 'import json, sys; json.load(open(sys.argv[1]))' \
  "$index" 2>/dev/null; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "autobahn.sh: no report after ${limit}s; the suite's last lines:" >&2
    tail -5 "$work/suite.log" >&2
    exit 1
  fi
  if ! kill -0 "$suite" 2>/dev/null; then
    echo "autobahn.sh: the suite ended without a report; its last lines:" >&2
    tail -20 "$work/suite.log" >&2
    exit 1
  fi
  sleep 1
done
kill "$suite" 2>/dev/null || true
if [ -n "${AUTOBAHN_REPORTS:-}" ]; then
  mkdir -p "$AUTOBAHN_REPORTS" && cp -r "$work/reports/servers/." "$AUTOBAHN_REPORTS/"
  echo "autobahn.sh: the suite's reports copied to $AUTOBAHN_REPORTS"
fi
if ! kill -0 "$server" 2>/dev/null; then
  echo "autobahn.sh: saythat died during the run:" >&2
  cat "$work/server.log" >&2
  exit 1
fi

"$venv/bin/python" - "$index" "$expected" "$update" <<'EOF'
import collections, json, sys

index, expected_path, update = sys.argv[1:]
def order(case):
    return [int(part) for part in case.split(".")]
got = {case: [v["behavior"], v["behaviorClose"]]
       for case, v in json.load(open(index))["saythat"].items()}
got = dict(sorted(got.items(), key=lambda kv: order(kv[0])))

counts = collections.Counter()
for verdicts in got.values():
    # Verdicts past these (UNCLEAN, WRONG CODE, ...) are failures of their own kind.
    rank = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
    worst = max(verdicts, key=lambda v: rank.index(v) if v in rank else len(rank))
    counts[worst] += 1
print(f"{len(got)} cases (by the worse of behavior and behaviorClose): " +
      ", ".join(f"{counts[k]} {k}" for k in ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED"]) +
      "".join(f", {n} {k}" for k, n in counts.items()
              if k not in ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED")))

if update:
    with open(expected_path, "w") as f:
        f.write("{\n" + ",\n".join(f'  "{case}": {json.dumps(v)}' for case, v in got.items())
                + "\n}\n")
    print(f"wrote {expected_path}")
    sys.exit(0)

expected = json.load(open(expected_path))
changed = [case for case in sorted(set(got) | set(expected), key=order)
           if got.get(case) != expected.get(case)]
for case in changed:
    print(f"  {case}: expected {expected.get(case)}, got {got.get(case)}")
if changed:
    print(f"{len(changed)} cases differ from {expected_path}")
    sys.exit(1)
print(f"every verdict as in {expected_path}")
EOF
