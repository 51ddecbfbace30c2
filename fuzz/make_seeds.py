#!/usr/bin/env python3
"""Writes the committed seed corpus: the shared test vectors (as headers and as raw
envelopes), and a few sealed cases in the targets' own input layout (see src/lib.rs)."""
import pathlib

here = pathlib.Path(__file__).resolve().parent
# Small ones only: a seed is a starting point, and big seeds slow every execution.
vector_dir = here.parent / "tests" / "vectors"
vectors = sorted(v for v in [*vector_dir.glob("*.cmke"), *(vector_dir / "branch").glob("*.cmke")]
                 if v.stat().st_size <= 16384)
store = vector_dir / "branch" / "branches" / "pub-br"


def case(plain_len, aad=b"", segment_sel=0, threads_sel=0, edits=b""):
    plain = bytes((i * 7 + 3) % 256 for i in range(plain_len))
    return (bytes([1, segment_sel, threads_sel]) + plain_len.to_bytes(2, "little") + plain
            + bytes([len(aad)]) + aad + edits)


sealed_cases = {
    "empty": case(0),
    "one-byte": case(1, b"a"),
    "one-segment": case(64, b"", 0),
    "segment-plus-one": case(65, b"id", 1),
    "three-segments": case(3 * 128 + 5, b"x", 1, 1),
    "flip": case(300, b"", 0, 0, bytes([0, 40, 0, 1])),
    "truncate": case(300, b"", 0, 0, bytes([1, 200, 0])),
    "insert": case(300, b"", 0, 0, bytes([2, 150, 0, 9])),
    "copy": case(600, b"", 0, 0, bytes([3, 120, 0, 80, 0, 200, 1])),
}
raw = {f"vector-{v.stem}": bytes([0, 0, 0, 0]) + v.read_bytes() for v in vectors}
# store_record: 0 then a record (the vectors' records, under their RSA CMK), or 1 then a
# `current` file.
records = {f"record-{r.stem}": bytes([0]) + r.read_bytes() for r in sorted(store.glob("*.cmke"))}
records["current"] = bytes([1]) + (store / "current").read_bytes()
records["current-no-newline"] = bytes([1]) + (store / "current").read_bytes().strip()
records["current-upper"] = bytes([1]) + (store / "current").read_bytes().upper()

corpora = {
    "header": {f"vector-{v.stem}": v.read_bytes() for v in vectors},
    "open": {**sealed_cases, **raw},
    "stream": {name: bytes([2] * 64) + data for name, data in {**sealed_cases, **raw}.items()},
    "range": {name: bytes([10, 0, 200, 0]) + data for name, data in {**sealed_cases, **raw}.items()},
    "store_record": records,
}
for target, files in corpora.items():
    out = here / "seeds" / target
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    print(f"{target}: {len(files)} seeds")
