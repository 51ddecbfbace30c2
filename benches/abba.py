#!/usr/bin/env python3
"""The table of benches/abba.sh: ratios to the raw primitives of the same run, per side the
geometric mean of its two runs, and new / base. Reads criterion's mean estimates."""
import json
import math
import pathlib
import sys


def mean_ns(run, *parts):
    path = run.joinpath(*parts, "new", "estimates.json")
    return json.loads(path.read_text())["mean"]["point_estimate"] if path.exists() else None


def ratios(run):
    """Throughput as a fraction of the raw primitive of the same run (1.0 = no overhead)."""
    out = {}
    for size in ["1KiB", "1MiB", "16MiB"]:
        aes = mean_ns(run, size, "aes_gcm_raw", size)
        for op in ["seal", "open", "seal_into", "open_into"]:
            t = mean_ns(run, size, op, size)
            if aes and t:
                out[f"seal_open {size} {op} / raw AES-GCM"] = aes / t
    aes = mean_ns(run, "64MiB", "aes_gcm_raw")
    for op in ["seal_into", "open_into", "seal_in_place", "open_in_place"]:
        for threads in ["1t", "2t"]:
            t = mean_ns(run, "64MiB", f"{op}_{threads}")
            if aes and t:
                out[f"parallel 64MiB {op} {threads} / raw AES-GCM 1t"] = aes / t
    raw = mean_ns(run, "branch", "aes_gcm_raw_1KiB")
    for op in ["branch_seal", "branch_open", "rsa_seal", "rsa_open", "envelope_only_seal"]:
        t = mean_ns(run, "branch", f"{op}_1KiB")
        if raw and t:
            out[f"branch 1KiB {op} / raw AES-GCM"] = raw / t
    return out


def main():
    root = pathlib.Path(sys.argv[1])
    runs = {p.name: ratios(p) for p in sorted(root.iterdir()) if p.is_dir()}
    base = [r for name, r in runs.items() if name.endswith("base")]
    new = [r for name, r in runs.items() if name.endswith("new")]
    names = sorted(set().union(*runs.values()))
    geo = lambda values: math.exp(sum(math.log(v) for v in values) / len(values))
    print(f"{'ratio (throughput / raw primitive, same run)':58} {'base':>8} {'new':>8} {'new/base':>9}")
    for name in names:
        b = [r[name] for r in base if name in r]
        n = [r[name] for r in new if name in r]
        if len(b) == 2 and len(n) == 2:
            gb, gn = geo(b), geo(n)
            print(f"{name:58} {gb:8.3f} {gn:8.3f} {gn / gb:9.3f}")
    print("runs: " + ", ".join(runs))


if __name__ == "__main__":
    main()
