#!/usr/bin/env bash
# Scans saythat's TLS with external scanners: testssl.sh and sslyze (with its Mozilla
# "intermediate" profile check), against `saythat serve --framing http --tls-cert` on a free
# loopback port with a test certificate (ECDSA P-256, from scripts/tls-cert.sh).
#
#   scripts/tls-scan.sh [--out DIR] [--only testssl|sslyze]
#
# Each scanner is optional: one that is missing is skipped with a line saying how to install it,
# and the script fails (exit 2) only when neither ran.
#   testssl.sh: the Debian package (apt-get install testssl.sh; the command is `testssl`), or
#               TESTSSL=/path/to/testssl.sh.
#   sslyze:     from PyPI, into a virtual environment this script makes on first use
#               (SSLYZE_VENV, default ~/.cache/saythat/sslyze-venv; needs python3-venv and pip's
#               access to PyPI once). SSLYZE_VENV=none skips it.
# Exits 1 on a finding that matters: a protocol below TLS 1.2 offered, a weak cipher offered
# (testssl's classes NULL, anonymous, export, LOW (DES, RC2, RC4), 3DES/IDEA, obsolete CBC),
# insecure or client-initiated renegotiation, TLS compression (CRIME), any vulnerability check testssl rates HIGH or CRITICAL, or sslyze's Mozilla intermediate check
# failing on anything but the certificate (the test CA is, by design, in no trust store). The
# rest (the chain's trust, no OCSP, no HSTS, no server cipher order) is printed as notes.
# Writes DIR/testssl.json, DIR/testssl.txt, DIR/sslyze.json, DIR/sslyze.txt (default
# results/tls-scan). Loopback only; bounded: each scanner runs under a 10-minute timeout, and the
# server is stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

out=results/tls-scan
only=
while [ $# -gt 0 ]; do
  case $1 in
    --out | --only)
      [ $# -ge 2 ] || { echo "tls-scan: $1 needs a value" >&2; exit 2; }
      case $1 in --out) out=$2 ;; --only) only=$2 ;; esac
      shift 2 ;;
    -h | --help) sed -n '6p' "$0" | sed 's/^# *//; s/^/usage: /'; exit 0 ;;
    *) echo "tls-scan: unknown option $1" >&2; exit 2 ;;
  esac
done
case $only in '' | testssl | sslyze) ;; *) echo "tls-scan: --only takes testssl or sslyze" >&2; exit 2 ;; esac
command -v openssl >/dev/null || { echo "tls-scan: needs openssl (apt-get install openssl)" >&2; exit 2; }

echo "tls-scan: building (release)"
cargo build --release --quiet --bin saythat
bin=$(release_dir)/saythat
mkdir -p "$out"
dir=$(mktemp -d /tmp/saythat-scan.XXXXXX)
declare -A pid
trap 'stop_servers; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
scripts/tls-cert.sh "$dir/tls" >/dev/null
"$bin" serve --listen 127.0.0.1:0 --framing http --tls-cert "$dir/tls/server.pem" \
  --tls-key "$dir/tls/server.key" 2>"$dir/server.log" &
pid[saythat]=$!
addr=$(listen_addr "$dir/server.log")
echo "tls-scan: saythat serve --framing http --tls-cert (P-256 test certificate) on $addr"

ran=0
failed=0

# testssl: every default check; its JSON's findings are judged below.
testssl=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}
if [ "$only" = sslyze ]; then
  :
elif [ -z "$testssl" ]; then
  echo "tls-scan: testssl.sh is not installed; skipped (apt-get install testssl.sh, or TESTSSL=PATH)"
else
  echo "tls-scan: testssl ($("$testssl" --version 2>/dev/null | grep -o 'testssl[^ ]* *[0-9][^ ]*' | head -1)), a few minutes"
  rm -f "$out/testssl.json"
  rc=0
  timeout 600 "$testssl" --quiet --color 0 --warnings off --sneaky --jsonfile "$out/testssl.json" \
    "$addr" >"$out/testssl.txt" 2>&1 || rc=$?
  if [ ! -s "$out/testssl.json" ]; then
    echo "tls-scan: testssl wrote no findings (exit $rc); see $out/testssl.txt" >&2
    failed=1
  else
    ran=1
    python3 - "$out/testssl.json" <<'PY' || failed=1
import json, sys
findings = json.load(open(sys.argv[1]))
by_id = {f["id"]: f for f in findings}
bad = []
# Protocols below TLS 1.2: "offered" (without "not") is a finding.
for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    f = by_id.get(proto, {}).get("finding", "")
    if "offered" in f and "not offered" not in f:
        bad.append(f"{proto} offered")
# Weak cipher classes: any offered is a finding (3.0's ids and 3.2's).
for cid in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
            "cipherlist_3DES_IDEA", "cipherlist_3DES", "cipherlist_OBSOLETED"):
    f = by_id.get(cid, {}).get("finding", "")
    if f and "not offered" not in f:
        bad.append(f"{cid}: {f}")
for rid in ("secure_renego", "secure_client_renego"):
    f = by_id.get(rid, {})
    if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL"):
        bad.append(f"{rid}: {f['finding']}")
crime = by_id.get("CRIME_TLS", {})
if crime and "not vulnerable" not in crime.get("finding", ""):
    bad.append(f"CRIME_TLS (compression): {crime['finding']}")
# testssl's vulnerability checks: HIGH or CRITICAL on any of them is a finding. Its other
# ratings (the test chain's trust, no OCSP, no HSTS, no server cipher order, which Mozilla's
# intermediate profile itself leaves to the client among strong suites) are printed as notes.
vulns = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego",
         "CRIME_TLS", "BREACH", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN",
         "LOGJAM", "LOGJAM-common_primes", "BEAST", "LUCKY13", "RC4", "winshock", "GREASE")
notes = []
for f in findings:
    sev = f.get("severity", "")
    if sev in ("HIGH", "CRITICAL", "MEDIUM", "LOW", "WARN"):
        line = f"{sev:8} {f['id']}: {f['finding']}"
        if sev in ("HIGH", "CRITICAL") and f["id"] in vulns:
            bad.append(line)
        else:
            notes.append(line)
print("testssl: protocols offered: " + ", ".join(
    p for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")
    if "offered" in by_id.get(p, {}).get("finding", "")
    and "not offered" not in by_id.get(p, {}).get("finding", "")))
for key in ("overall_grade", "final_score"):
    if key in by_id:
        print(f"testssl: {key}: {by_id[key]['finding']}")
for line in notes:
    print("testssl: note: " + line)
for line in bad:
    print("testssl: FINDING: " + line)
print("testssl: " + ("no finding that matters" if not bad else f"{len(bad)} findings that matter"))
sys.exit(1 if bad else 0)
PY
  fi
fi

# sslyze: every default scan plus the Mozilla intermediate profile check, trusting the test CA
# for the certificate checks it can be told about.
venv=${SSLYZE_VENV:-$HOME/.cache/saythat/sslyze-venv}
if [ "$only" = testssl ]; then
  :
elif [ "$venv" = none ]; then
  echo "tls-scan: sslyze skipped (SSLYZE_VENV=none)"
else
  if [ ! -x "$venv/bin/sslyze" ]; then
    echo "tls-scan: making a virtual environment for sslyze in $venv (pip install sslyze)"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet sslyze; } >"$dir/pip.log" 2>&1; then
      echo "tls-scan: cannot install sslyze; skipped (needs python3-venv and access to PyPI):" >&2
      tail -3 "$dir/pip.log" >&2
      venv=
    fi
  fi
  if [ -n "$venv" ]; then
    echo "tls-scan: sslyze ($("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("sslyze"))' 2>/dev/null || echo "version unknown"))"
    rc=0
    timeout 600 "$venv/bin/sslyze" --mozilla_config=intermediate --certinfo_ca_file "$dir/tls/ca.pem" \
      --json_out "$out/sslyze.json" "$addr" >"$out/sslyze.txt" 2>&1 || rc=$?
    ran=1
    # The Mozilla check's verdict: its lines after "COMPLIANCE AGAINST TLS CONFIGURATION".
    sed -n '/COMPLIANCE AGAINST/,$p' "$out/sslyze.txt" | grep -E 'FAILED|OK|^ *\* ' | sed 's/^ */sslyze: /'
    grep -E 'WARNING|VULNERABLE|NOT SUPPORTED' "$out/sslyze.txt" | sort -u | sed 's/^ */sslyze: note: /'
    # What fails it other than the test certificate's trust matters.
    if [ "$rc" != 0 ]; then
      if sed -n '/COMPLIANCE AGAINST/,$p' "$out/sslyze.txt" | grep -E '^ *\* ' |
        grep -v -i -E 'certificate|trust|ocsp|hostname' | grep -q .; then
        echo "tls-scan: sslyze: FINDING: not compliant with Mozilla intermediate (see above)"
        failed=1
      elif ! grep -q 'COMPLIANCE AGAINST' "$out/sslyze.txt"; then
        echo "tls-scan: sslyze failed (exit $rc); see $out/sslyze.txt" >&2
        failed=1
      else
        echo "tls-scan: sslyze: only the test certificate's own findings (see above)"
      fi
    fi
  fi
fi

[ "$ran" = 1 ] || { echo "tls-scan: no scanner ran; install one (see above)" >&2; exit 2; }
echo "tls-scan: reports in $out/"
if [ "$failed" != 0 ]; then
  echo "tls-scan: FAIL: a finding that matters (see above)" >&2
  exit 1
fi
echo "tls-scan: OK: TLS 1.2 and 1.3 only, no weak cipher, no renegotiation, no compression"
