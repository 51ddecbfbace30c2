#!/usr/bin/env python3
"""Prints what benches/fips_ratio.sh measured: FIPS-build throughput / default-build
throughput for each case and round (1.00 = the same speed; below 1 = the FIPS module is
slower), from criterion's saved baselines (mean times)."""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
cases = [("rsa_oaep_raw", "wrap"), ("rsa_oaep_raw", "unwrap")] + [
    (size, f"{op}/{size}") for size in ["1KiB", "1MiB"] for op in ["aes_gcm_raw", "seal", "open"]
]


def mean_ns(group, bench, baseline):
    path = root / group / bench / baseline / "estimates.json"
    if not path.exists():
        sys.exit(f"missing {path}: run benches/fips_ratio.sh")
    return json.loads(path.read_text())["mean"]["point_estimate"]


print(f"{'case':<26} {'round 1':>8} {'round 2':>8}   (FIPS throughput / default throughput)")
for group, bench in cases:
    ratios = [mean_ns(group, bench, f"default-{r}") / mean_ns(group, bench, f"fips-{r}") for r in (1, 2)]
    print(f"{group + '/' + bench:<26} " + " ".join(f"{x:>8.2f}" for x in ratios))
