#!/usr/bin/env bash
# The soak test run longer, in release mode: prints operations/s, p50/p99 latency, the
# calls each vault of the Key Vault double received, and resident memory by quarter.
#   benches/soak.sh [SECONDS]     (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
CMKE_SOAK_SECONDS="${1:-600}" cargo test --release --all-features --test soak -- --nocapture 2>&1 |
    grep -E '^soak:|panicked|test result'
