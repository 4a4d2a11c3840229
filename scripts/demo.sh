#!/usr/bin/env bash
# Installs what is missing, builds kconn and runs `kconn demo` (an in-process Kafka cluster; needs no
# Kafka and no Kubernetes). Extra arguments go to `kconn demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo run --locked --quiet -- demo "$@"
