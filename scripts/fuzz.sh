#!/usr/bin/env bash
# Runs each fuzz target of tests/fuzz.rs for a bounded time (default 60 s each; `scripts/fuzz.sh 300`
# for five minutes), release build, and prints how many inputs each tried. A failing input is shrunk and
# kept in tests/corpus/<target>/, which every later run (and the normal test suite) replays.
# Needs no test environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
KCONN_FUZZ_SECONDS=${1:-60} cargo test --release --test fuzz -- --nocapture --test-threads 1 2>&1 \
  | grep -oE 'fuzz [a-z0-9]+: .*|panicked.*|shrunk.*|test result.*'
