#!/usr/bin/env bash
# Runs every test: installs what is missing, starts the test environment (real Kafka, KDC and
# kube-apiserver on loopback), runs `cargo test`, searches what the tests kept of kconn's output for the
# environment's secrets (scripts/secret-sweep.sh), and stops the environment, also on failure.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test env_kube`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/test-env.sh up
trap 'scripts/test-env.sh down' EXIT
cargo test --locked --no-fail-fast --features env-tests "$@"
# Everything the tests kept of kconn's output must be free of the environment's secrets.
if [ $# -eq 0 ]; then scripts/secret-sweep.sh; fi
