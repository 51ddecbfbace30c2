#!/usr/bin/env bash
# `cmke rewrap` over 10,000 attached 1 KiB envelopes after a rotation: this build against a
# base build (a git revision), in one run, alternately, as a ratio of wall times.
#   bash benches/rewrap_files.sh [BASE_REV]        (default BASE_REV: HEAD~1)
# CMKE_BASE_BIN=path skips building the base. FILES=n changes the count; ROUNDS=n the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev="${1:-HEAD~1}"
files="${FILES:-10000}"
rounds="${ROUNDS:-3}"

cargo build --quiet --release --features cli --bin cmke
new_bin="$PWD/target/release/cmke"
if [ -z "${CMKE_BASE_BIN:-}" ]; then
    base_dir="$PWD/target/rewrap-base"
    rm -rf "$base_dir"
    git worktree add --force --detach "$base_dir" "$base_rev" >/dev/null
    (cd "$base_dir" && CARGO_TARGET_DIR="$PWD/../rewrap-base-target" \
        cargo build --quiet --release --features cli --bin cmke)
    CMKE_BASE_BIN="$PWD/target/rewrap-base-target/release/cmke"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"
keyring="$work/keyring"
head -c 1024 /dev/urandom >"$work/plain"
"$new_bin" --keyring "$keyring" key create orders >/dev/null
"$new_bin" --keyring "$keyring" encrypt --key orders -o "$work/one.cmke" "$work/plain"
"$new_bin" --keyring "$keyring" key rotate orders >/dev/null
# One stale envelope, copied: every copy costs rewrap one unwrap, one wrap and one file.
mkdir -p "$work/template"
for ((i = 0; i < files; i++)); do
    d="$work/template/d$((i / 100))"
    [ -d "$d" ] || mkdir -p "$d"
    cp "$work/one.cmke" "$d/f$i.cmke"
done

run() { # binary → seconds of wall time for one rewrap of a fresh copy of the tree
    rm -rf "$work/tree" && cp -r "$work/template" "$work/tree" && sync
    local start end
    start=$(date +%s.%N)
    "$1" --keyring "$keyring" rewrap --quiet "$work/tree" 2>"$work/summary"
    end=$(date +%s.%N)
    grep -q "$files re-wrapped" "$work/summary" || { cat "$work/summary" >&2; exit 1; }
    python3 -c "print(f'{$end - $start:.3f}')"
}

echo "round  base_s  new_s  new/base"
ratios=()
for ((r = 1; r <= rounds; r++)); do
    # ABBA: the order alternates, so that disk write-back left by the run before (which
    # grows over the first rounds) weighs on neither binary more than the other.
    if ((r % 2)); then
        b=$(run "$CMKE_BASE_BIN")
        n=$(run "$new_bin")
    else
        n=$(run "$new_bin")
        b=$(run "$CMKE_BASE_BIN")
    fi
    ratio=$(python3 -c "print($n / $b)")
    ratios+=("$ratio")
    printf '%5d  %6.2f  %5.2f  %8.3f\n' "$r" "$b" "$n" "$ratio"
done
python3 -c "import math,sys; r=[float(x) for x in sys.argv[1:]]; print(f'geometric mean new/base: {math.exp(sum(map(math.log, r)) / len(r)):.3f} over {len(r)} rounds')" "${ratios[@]}"
