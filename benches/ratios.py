#!/usr/bin/env python3
"""Prints the seal_open bench as ratios to the raw primitives of the same run.

Run after `cargo bench --bench seal_open`. Reads criterion's estimates (mean times).
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def mean_ns(*parts):
    path = root.joinpath(*parts, "new", "estimates.json")
    if not path.exists():
        sys.exit(f"missing {path.relative_to(root.parent.parent)}: run cargo bench --bench seal_open first")
    return json.loads(path.read_text())["mean"]["point_estimate"]


wrap = mean_ns("rsa_oaep_raw", "wrap")
unwrap = mean_ns("rsa_oaep_raw", "unwrap")
print(f"raw RSA-2048 OAEP-256: wrap {wrap / 1000:.1f} us, unwrap {unwrap / 1000:.1f} us")
print(f"{'size':>6}  {'seal/AES':>9}  {'open/AES':>9}  {'seal/(AES+wrap)':>15}  {'open/(AES+unwrap)':>17}")
for name in ["1KiB", "64KiB", "1MiB", "16MiB"]:
    aes = mean_ns(name, "aes_gcm_raw", name)
    seal = mean_ns(name, "seal", name)
    open_ = mean_ns(name, "open", name)
    # Throughput ratio = raw time / our time; >= 0.90 is the target for large objects.
    print(
        f"{name:>6}  {aes / seal:>9.3f}  {aes / open_:>9.3f}  "
        f"{(aes + wrap) / seal:>15.3f}  {(aes + unwrap) / open_:>17.3f}"
    )
print("columns: throughput as a fraction of the raw primitive(s); 1.0 = no overhead")
print(f"seal 1KiB time / (wrap + raw AES 1KiB) = {mean_ns('1KiB', 'seal', '1KiB') / (wrap + mean_ns('1KiB', 'aes_gcm_raw', '1KiB')):.3f} (target <= 1.15)")
