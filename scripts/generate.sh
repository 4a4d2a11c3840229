#!/usr/bin/env bash
# Regenerates every generated file from the Rust types: the CRD (crds/ and the chart's copy) and the API
# reference. tests/crd.rs fails when one of them drifts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run -q -- crd > crds/kafkaconnections.kconn.dev.yaml
cp crds/kafkaconnections.kconn.dev.yaml charts/kconn/crds/kafkaconnections.kconn.dev.yaml
cargo run -q -- crd --reference > docs/api-reference.md
