#!/usr/bin/env bash
# The browser test (tests/ws_browser.rs): headless Chromium opens a WebSocket to the saythat
# binary, sends a text and a binary message and closes; the test checks the echoes and the
# clean close in the DOM Chromium dumps. `cargo test` skips it where Chromium is missing (CI);
# this script fails instead.
#
#   scripts/browser.sh        (CHROMIUM=/path/to/chrome to name the browser)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHROMIUM:-}" ]; then
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null; then CHROMIUM=$(command -v "$name"); break; fi
  done
fi
if [ -z "${CHROMIUM:-}" ] || [ ! -x "$CHROMIUM" ]; then
  echo "browser.sh: FAILED: no Chromium (looked for chromium, chromium-browser, google-chrome" \
    "on PATH; set CHROMIUM to one). On Debian: apt-get install chromium" >&2
  exit 1
fi
echo "browser.sh: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
export CHROMIUM SAYTHAT_BROWSER_REQUIRED=1
cargo test --test ws_browser -- --nocapture
