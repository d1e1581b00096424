#!/usr/bin/env bash
# The research simulator at scale: a 10,000-node, 100,000-file, 30-simulated-day churn run at
# availability 0.9 with repair on. Prints the run's line (events, wall time, events/s) and
# /usr/bin/time's peak memory. Targets: under 2 minutes, under 4 GiB, 1M events/s.
#
#   bash benches/research.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/research-bench}"
cargo build --release -p cairn-node --quiet
bin="${CARGO_TARGET_DIR:-target}/release/cairn"
/usr/bin/time -v "$bin" sim research --nodes 10000 --files 100000 --days 30 \
    --availability 0.9 --repair threshold:7 --seed 1 --out "$out" --quiet 2> "$out.time" \
    | tee "$out.line"
grep -E "Elapsed|Maximum resident|User time" "$out.time"
