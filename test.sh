#!/usr/bin/env bash
# cairn's whole test command: the workspace's tests, then the madsim suite, which builds the
# real transport and actor host on madsim's simulated TCP and clock (its own target dir, as
# `--cfg madsim` rebuilds every dependency). Extra arguments go to the first `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

echo "==> cargo test --workspace $*"
cargo test --workspace "$@"

echo "==> madsim: RUSTFLAGS=\"--cfg madsim\" cargo test -p cairn-net --test madsim_grid"
RUSTFLAGS="${RUSTFLAGS:-} --cfg madsim" cargo test -p cairn-net --test madsim_grid --target-dir target/madsim
