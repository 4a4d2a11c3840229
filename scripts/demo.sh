#!/usr/bin/env bash
# Installs what is missing, builds kconn and runs `kconn demo` (an in-process Kafka cluster; needs no
# Kafka and no Kubernetes). Extra arguments go to `kconn demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
target=${CARGO_TARGET_DIR:-target}
if [ ! -x "$target/debug/kconn" ]; then
  echo "[demo] building kconn: the first build compiles about 300 crates and librdkafka, several minutes on 2 cores; cargo shows its progress below" >&2
fi
cargo build --locked --bin kconn
exec "$target/debug/kconn" demo "$@"
