#!/usr/bin/env bash
# A bounded fuzz run of every target (FUZZ_SECONDS each, 45 by default: CI must stay well under 30 minutes), starting from
# the committed seeds. Installs cargo-fuzz when missing; if it cannot, this fails loudly
# rather than pass as if fuzzed. A crash fails the run and leaves its input under
# fuzz/artifacts/. For a longer run: FUZZ_SECONDS=3600 bash .ci/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-45}"
export RUSTC_BOOTSTRAP=1 # cargo fuzz needs nightly flags; this is the stable toolchain

if ! cargo fuzz --version >/dev/null 2>&1; then
    if ! bash .ci/install-tool.sh cargo-fuzz; then
        printf '\n!!! FUZZ RUN NOT DONE: cargo-fuzz could not be installed.\n\n' >&2
        exit 1
    fi
fi

cargo fuzz build -O
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if ! cargo fuzz run -O "$target" "$work/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target FAILED (input saved under fuzz/artifacts/$target)" >&2
        exit 1
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    echo "fuzz $target: ${seconds}s, $done_line"
done
