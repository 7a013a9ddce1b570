#!/usr/bin/env bash
# Fuzzes the pure protocol code (fuzz/fuzz_targets/) with cargo-fuzz and libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]        (default 60 per target)
#
# First replays the saved findings (fuzz/regressions/TARGET/), then fuzzes each target for
# SECONDS from its corpus (fuzz/corpus/TARGET/, kept between runs, not committed) and the
# committed seeds (fuzz/seeds/TARGET/). Prints per target the executions, libFuzzer's coverage
# (`cov:`), the corpus size and the time; exits 1 if any input crashed, hung or broke an
# invariant (the input is left in fuzz/artifacts/TARGET/, the log in fuzz/artifacts/logs/).
# Installs cargo-fuzz from crates.io if missing; needs the nightly toolchain. No network beyond
# that install; each run is bounded by -max_total_time. Not run by CI.
#
# Known findings fail the run until fixed; SAYTHAT_FUZZ_TOLERATE=name,... (names in
# fuzz/fuzz_targets/http_check.rs) fuzzes past them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
seconds=${1:-60}
whole_number SECONDS "$seconds" "scripts/fuzz.sh [SECONDS]   (default 60 per target)"
targets=(http_stream http_over_tls chunked ws_stream)
# An input that takes longer than this is a hang (libFuzzer's default is 20 minutes).
input_timeout=10
# Longest input per target: the decoder's past the 8 KiB of trailers it accepts (libFuzzer's
# default, 4 KiB, would never reach that refusal); HTTP's at the default, since long inputs cut
# into one-byte reads make it several times slower, and heads reach their limits at the small
# --max-header values its plans pick; WebSocket's past a 300-byte --max-message and a few
# 16-bit lengths.
declare -A max_len=([http_stream]=4096 [http_over_tls]=4096 [chunked]=20000 [ws_stream]=8192)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if [ -n "${SAYTHAT_FUZZ_TOLERATE:-}" ]; then
  echo "tolerating known findings: $SAYTHAT_FUZZ_TOLERATE"
fi
cargo +nightly fuzz build

logs=fuzz/artifacts/logs
mkdir -p "$logs"
failed=()
report=()
for target in "${targets[@]}"; do
  for input in fuzz/regressions/"$target"/*; do
    [ -f "$input" ] || continue
    log=$logs/$target-$(basename "$input").log
    if ! cargo +nightly fuzz run "$target" "$input" -- -runs=0 >"$log" 2>&1; then
      echo "$target: saved finding $input still fails (log: $log):"
      grep -m1 -A1 'panicked' "$log" | sed 's/^/  /' || tail -5 "$log"
      failed+=("$target:$(basename "$input")")
    fi
  done

  corpus=fuzz/corpus/$target
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  log=$logs/$target.log
  echo "fuzzing $target for ${seconds}s"
  start=$(date +%s)
  status=0
  timeout $((seconds + 300)) cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout="$input_timeout" -max_len="${max_len[$target]}" -print_final_stats=1 >"$log" 2>&1 ||
    status=$?
  elapsed=$(($(date +%s) - start))
  # libFuzzer's last status line, `#RUNS DONE cov: N ft: N corp: N/SIZE ...`, and its final
  # stats, which a crash prints too.
  stats=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
  corp="$(find "$corpus" -type f | wc -l) inputs, $(find "$corpus" -type f -printf '%s\n' |
    awk '{ n += $1 } END { print n + 0 }') bytes"
  line="$target: ${elapsed}s, ${runs:-?} runs, cov ${cov:-?}, corpus ${corp}"
  if [ "$status" -ne 0 ]; then
    line+=", FAILED (exit $status, log: $log)"
    failed+=("$target")
    grep -m1 -A2 -E 'panicked|ERROR: libFuzzer' "$log" | sed 's/^/  /' || true
    grep -m1 -E 'Test unit written to' "$log" | sed 's/^/  /' || true
  fi
  echo "$line"
  report+=("$line")
done

echo
echo "summary:"
printf '  %s\n' "${report[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "no crash"
