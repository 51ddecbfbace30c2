#!/usr/bin/env bash
# The seal_open, parallel and branch benches of this tree against a base revision, run in
# the order base, new, new, base (ABBA), so that drift of a shared, noisy machine falls on
# both alike. Each run's figures are ratios to the raw primitives of that same run; the
# table gives, per ratio, the geometric mean of each side's two runs and new / base.
#   bash benches/abba.sh [BASE_REV]        (default BASE_REV: HEAD~1)
# BENCHES="seal_open" runs only those benches; FILTER=16MiB only the benchmarks whose names
# contain it; the runs are kept in target/abba (or $ABBA_OUT). ORDER=BAAB runs new, base,
# base, new instead: a difference that follows the position, not the build, is the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev="${1:-HEAD~1}"
benches=()
for bench in ${BENCHES:-seal_open parallel branch}; do benches+=(--bench "$bench"); done
filter=(${FILTER:+"$FILTER"})
out="${ABBA_OUT:-$PWD/target/abba}"
base_dir="$PWD/target/abba-base"
rm -rf "$out" "$base_dir"
mkdir -p "$out"
git worktree add --force --detach "$base_dir" "$base_rev" >/dev/null
trap 'git worktree remove --force "$base_dir" >/dev/null 2>&1 || true' EXIT

run() { # label dir
    local label=$1 dir=$2 target="$2/target"
    [ "$dir" = "$base_dir" ] && target="$PWD/target/abba-base-target"
    rm -rf "$target/criterion"
    (cd "$dir" && CARGO_TARGET_DIR="$target" cargo bench --quiet "${benches[@]}" -- --noplot "${filter[@]}" >/dev/null)
    cp -r "$target/criterion" "$out/$label"
}
if [ "${ORDER:-ABBA}" = BAAB ]; then
    run 1-new "$PWD"
    run 2-base "$base_dir"
    run 3-base "$base_dir"
    run 4-new "$PWD"
else
    run 1-base "$base_dir"
    run 2-new "$PWD"
    run 3-new "$PWD"
    run 4-base "$base_dir"
fi
python3 benches/abba.py "$out"
