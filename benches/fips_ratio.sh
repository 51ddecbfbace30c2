#!/usr/bin/env bash
# Seal and open throughput on AWS-LC's FIPS module as a ratio to the default build,
# measured in one run: the seal_open bench's 1 KiB and 1 MiB cases and the raw primitives,
# the default and the fips build alternately, twice each, then benches/fips_ratio.py.
# Needs CMake and Go (for the FIPS module).
set -euo pipefail
cd "$(dirname "$0")/.."
filter='^(1KiB|1MiB)/(seal|open|aes_gcm_raw)/|^rsa_oaep_raw/'
for round in 1 2; do
    cargo bench --bench seal_open -- --save-baseline "default-$round" "$filter"
    cargo bench --bench seal_open --features fips -- --save-baseline "fips-$round" "$filter"
done
python3 benches/fips_ratio.py
