#!/usr/bin/env bash
# Runs every test: installs what is missing, starts the test environment (real Kafka, KDC and
# kube-apiserver on loopback), runs `cargo test`, and stops the environment, also on failure.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test env_kube`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/test-env.sh up
trap 'scripts/test-env.sh down' EXIT
cargo test --locked --no-fail-fast "$@"
