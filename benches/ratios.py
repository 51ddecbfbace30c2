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


# benches/seal_open.rs, if it has been run.
if (root / "rsa_oaep_raw").exists():
    wrap = mean_ns("rsa_oaep_raw", "wrap")
    unwrap = mean_ns("rsa_oaep_raw", "unwrap")
    print(f"raw RSA-2048 OAEP-256: wrap {wrap / 1000:.1f} us, unwrap {unwrap / 1000:.1f} us")
    ops = ["seal", "open", "seal_into", "open_into"]
    print("throughput as a fraction of raw AES-256-GCM (in place, same run); 1.0 = no overhead")
    print(f"{'size':>6}  " + "  ".join(f"{op:>9}" for op in ops) + "   | excluding the one RSA op:  " + "  ".join(f"{op:>9}" for op in ops))
    for name in ["1KiB", "64KiB", "1MiB", "16MiB"]:
        aes = mean_ns(name, "aes_gcm_raw", name)
        times = {op: mean_ns(name, op, name) for op in ops}
        rsa = {"seal": wrap, "seal_into": wrap, "open": unwrap, "open_into": unwrap}
        plain = "  ".join(f"{aes / times[op]:>9.3f}" for op in ops)
        net = "  ".join(f"{(aes + rsa[op]) / times[op]:>9.3f}" for op in ops)
        print(f"{name:>6}  {plain}   |                            {net}")
    one_k = mean_ns("1KiB", "aes_gcm_raw", "1KiB")
    print(f"seal 1KiB / (one wrap + raw AES-GCM 1KiB) = {mean_ns('1KiB', 'seal', '1KiB') / (wrap + one_k):.3f} (target <= 1.15)")

# benches/parallel.rs, if it has been run: 64 MiB on one and two threads.
if (root / "64MiB").exists():
    aes = mean_ns("64MiB", "aes_gcm_raw")
    print("\n64 MiB (cargo bench --bench parallel):")
    out_of_place = mean_ns("64MiB", "aes_gcm_raw_out_of_place")
    raw_two = mean_ns("64MiB", "aes_gcm_raw_2t")
    print(f"  raw AES-GCM on 2 threads: {aes / raw_two:.2f}x one thread (this machine's ceiling for 2 threads)")
    print(f"  raw AES-GCM out of place (separate output buffer): {aes / out_of_place:.3f} of in place")
    for op in ["seal_into", "open_into", "seal_in_place", "open_in_place"]:
        one = mean_ns("64MiB", f"{op}_1t")
        two = mean_ns("64MiB", f"{op}_2t")
        print(f"  {op}: 1 thread {aes / one:.3f} of raw AES-GCM; 2 threads {one / two:.2f}x one thread (targets: >= 0.90, >= 1.7)")

# benches/branch.rs, if it has been run: branch keys against the RSA path, 1 KiB.
if (root / "branch").exists():
    raw = mean_ns("branch", "aes_gcm_raw_1KiB")
    t = {op: mean_ns("branch", f"{op}_1KiB") for op in ["branch_seal", "branch_open", "rsa_seal", "rsa_open"]}
    print("\nbranch keys (cargo bench --bench branch), 1 KiB objects, warm branch key:")
    print(f"  open:  branch {t['rsa_open'] / t['branch_open']:6.1f}x the RSA path's throughput (target >= 50)")
    print(f"  seal:  branch {t['rsa_seal'] / t['branch_seal']:6.1f}x the RSA path's throughput (target >= 5)")
    for op in ["branch_seal", "branch_open", "rsa_seal", "rsa_open"]:
        print(f"  {op}: {t[op] / raw:7.1f} x raw AES-256-GCM of 1 KiB")
    # Where a seal's time goes: the envelope's own part (no wrap at all), and the
    # primitives a branch slot adds, each as a share of one branch seal.
    if (root / "branch" / "envelope_only_seal_1KiB").exists():
        envelope = mean_ns("branch", "envelope_only_seal_1KiB")
        print(f"  envelope alone (no wrap): {envelope / t['branch_seal']:5.2f} of a branch seal,"
              f" {envelope / t['rsa_seal']:5.2f} of an RSA seal")
        print(f"  branch slot (the rest):   {1 - envelope / t['branch_seal']:5.2f} of a branch seal")
        for part in ["hkdf_sha256_32B", "aes_gcm_key_setup", "random_12B"]:
            if (root / "branch" / f"part_{part}").exists():
                share = mean_ns("branch", f"part_{part}") / t["branch_seal"]
                print(f"    one {part}: {share:5.2f} of a branch seal")

# benches/key_service.rs, if it has been run: opens behind a 20 ms round trip.
if (root / "round_trip").exists():
    trip = mean_ns("round_trip", "one sleep")
    print(f"\nkey service (cargo bench --bench key_service), in round trips of {trip / 1e6:.1f} ms:")
    for group, name, expect in [
        ("repeat", "16 opens, no cache", "16"),
        ("repeat", "16 opens, cached", "0 (all hits)"),
        ("many", "64 objects, 1 in flight", "64"),
        ("many", "64 objects, 8 in flight", "8 (64 / 8)"),
    ]:
        print(f"  {group}/{name}: {mean_ns(group, name) / trip:6.2f}   (expect about {expect})")

# benches/hsm.rs, if it has been run: unwraps in SoftHSM2 through the session pool.
if (root / "pool").exists():
    raw = mean_ns("raw", "C_Decrypt")
    print(f"\nPKCS#11 (cargo bench --features pkcs11 --bench hsm): raw C_Decrypt {raw / 1000:.0f} us")
    one = mean_ns("pool", "64 unwraps, 1 sessions")
    for n in [1, 2, 4]:
        t = mean_ns("pool", f"64 unwraps, {n} sessions")
        print(f"  64 unwraps, {n} sessions: {t / (64 * raw):.2f} x (64 raw C_Decrypt); {one / t:.2f}x the 1-session throughput")
