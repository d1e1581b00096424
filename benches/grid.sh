#!/usr/bin/env bash
# The grid benchmark: starts a 12-process grid on 127.0.0.1 (an introducer, 10 storage
# nodes, a client node) with the release `cairn` binary, then times `cairn put` and
# `cairn get` of a 256 MiB file through the client and reports the client's peak memory.
#
#   benches/grid.sh [SIZE_MIB]        (default 256)
#
# Prints each figure beside its target (put >= 150 MB/s, get >= 250 MB/s, client peak RSS
# < 100 MiB; MB = 10^6 bytes). Peak RSS is the client node's VmHWM (the process that
# encodes, decodes and talks to the grid) and, separately, that of the `cairn put`/`get`
# commands. The grid's files live in a temporary directory, removed at the end.
set -euo pipefail

size_mib=${1:-256}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -p cairn-node --manifest-path "$root/Cargo.toml" >&2
cairn="${CARGO_TARGET_DIR:-$root/target}/release/cairn"
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # FILE
    for _ in $(seq 600); do [[ -s $1 ]] && return 0; sleep 0.05; done
    echo "gave up waiting for $1" >&2; exit 1
}
start() { # DIR
    "$cairn" run "$1" 2>"$1.log" &
    pids+=($!)
    wait_for "$1/node.url"
}

"$cairn" create-introducer "$work/introducer" >/dev/null
start "$work/introducer"
wait_for "$work/introducer/introducer.furl"
furl=$(cat "$work/introducer/introducer.furl")
for i in $(seq -w 1 10); do
    "$cairn" create-node "$work/storage-$i" --introducer "$furl" --reserved-space "0 B" >/dev/null
    start "$work/storage-$i"
done
"$cairn" create-node "$work/client" --introducer "$furl" --no-storage >/dev/null
start "$work/client"
client_pid=${pids[-1]}
for _ in $(seq 600); do
    known=$("$cairn" -d "$work/client" status --json | grep -c '"id"' || true)
    [[ $known -ge 10 ]] && break
    sleep 0.05
done

head -c $((size_mib << 20)) /dev/urandom >"$work/input"
bytes=$((size_mib << 20))
sync

calc() { awk "BEGIN { print $* }"; }

measure() { # LABEL COMMAND...  -> sets seconds and kib (the command's peak RSS)
    local label=$1; shift
    local start end
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/$label.rss" "$@"
    end=$(date +%s.%N)
    seconds=$(calc "$end - $start")
    kib=$(cat "$work/$label.rss")
}

measure put "$cairn" -d "$work/client" put "$work/input" >"$work/cap"
put_s=$seconds put_cli_kib=$kib
cap=$(cat "$work/cap")
measure get "$cairn" -d "$work/client" get "$cap" -o "$work/output"
get_s=$seconds get_cli_kib=$kib
cmp "$work/input" "$work/output" || { echo "the file came back different" >&2; exit 1; }
node_kib=$(awk '/VmHWM/ {print $2}' "/proc/$client_pid/status")

verdict() { # VALUE LIMIT higher|lower
    if [[ $3 == higher ]]; then
        [[ $(calc "($1 >= $2)") == 1 ]] && echo PASS || echo BELOW
    else
        [[ $(calc "($1 < $2)") == 1 ]] && echo PASS || echo ABOVE
    fi
}
put_rate=$(calc "$bytes / $put_s / 1000000")
get_rate=$(calc "$bytes / $get_s / 1000000")
node_mib=$(calc "$node_kib / 1024")
cli_mib=$(calc "($put_cli_kib > $get_cli_kib ? $put_cli_kib : $get_cli_kib) / 1024")
echo "== cairn grid: 12 processes on 127.0.0.1, ${size_mib} MiB file, 3-of-10, happy 7 =="
printf '  put      %7.1f MB/s  (%.2f s)   target >= 150 MB/s  %s\n' "$put_rate" "$put_s" "$(verdict "$put_rate" 150 higher)"
printf '  get      %7.1f MB/s  (%.2f s)   target >= 250 MB/s  %s\n' "$get_rate" "$get_s" "$(verdict "$get_rate" 250 higher)"
printf '  client node peak RSS  %6.1f MiB   target < 100 MiB   %s\n' "$node_mib" "$(verdict "$node_mib" 100 lower)"
printf '  put/get command peak RSS %6.1f MiB\n' "$cli_mib"
