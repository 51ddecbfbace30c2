#!/usr/bin/env python3
"""Prints the crate's public API, one path a line, from rustdoc's JSON output.

    RUSTC_BOOTSTRAP=1 cargo rustdoc --lib --features azure,azure-blob,pkcs11,rustcrypto,tokio,test-support \
        -- -Z unstable-options --output-format json
    python3 .ci/public_api.py target/doc/cmk_envelope.json [--summary]

Every name reachable from the crate root is listed under each path it has (a re-export is
a path of its own), with the inherent methods of types and the methods of traits. With
--summary, only the counts: names at the root, modules, paths, and `Envelope`'s methods.
"""
import json
import sys


def main():
    doc = json.load(open(sys.argv[1]))
    summary = "--summary" in sys.argv
    index = doc["index"]
    root = doc["root"]
    lines = []
    seen_modules = set()

    def kind_of(item):
        inner = item.get("inner", {})
        return next(iter(inner)) if isinstance(inner, dict) and inner else str(inner)

    def methods(item):
        inner = item["inner"]
        kind = kind_of(item)
        body = inner.get(kind, {})
        out = []
        if kind == "trait":
            for i in body.get("items", []):
                m = index.get(str(i))
                if m and m.get("name"):
                    out.append(m["name"])
        for impl_id in body.get("impls", []) if isinstance(body, dict) else []:
            impl = index.get(str(impl_id))
            if not impl:
                continue
            imp = impl["inner"].get("impl", {})
            if imp.get("trait") is not None or imp.get("is_synthetic") or imp.get("blanket_impl"):
                continue
            for i in imp.get("items", []):
                m = index.get(str(i))
                if m and m.get("visibility") == "public" and m.get("name"):
                    out.append(m["name"])
        return sorted(set(out))

    def walk(module_id, path):
        if (module_id, path) in seen_modules:
            return
        seen_modules.add((module_id, path))
        module = index[str(module_id)]
        for item_id in module["inner"]["module"]["items"]:
            item = index.get(str(item_id))
            if not item or item.get("visibility") != "public":
                continue
            kind = kind_of(item)
            if kind == "use":
                use = item["inner"]["use"]
                target = index.get(str(use.get("id"))) if use.get("id") is not None else None
                name = use["name"]
                if use.get("is_glob") or target is None:
                    lines.append((f"{path}::{name}", "use"))
                    continue
                item, kind = target, kind_of(target)
            else:
                name = item["name"]
            full = f"{path}::{name}"
            lines.append((full, kind))
            if kind == "module":
                walk(item["id"], full)
            elif kind in ("struct", "enum", "trait", "union"):
                for m in methods(item):
                    lines.append((f"{full}::{m}", "method"))

    walk(root, "cmk_envelope")
    if summary:
        at_root = [p for p, k in lines if p.count("::") == 1]
        modules = [p for p, k in lines if k == "module"]
        envelope = [p for p, k in lines if p.startswith("cmk_envelope::Envelope::")]
        print(f"names at the root: {len(at_root)}")
        print(f"modules: {len(modules)}")
        print(f"public paths (types, functions, constants, modules, methods): {len(lines)}")
        print(f"Envelope methods: {len(envelope)}")
        print("root: " + ", ".join(sorted(p.split("::")[1] for p in at_root)))
    else:
        for path, kind in sorted(lines):
            print(f"{kind:8} {path}")


if __name__ == "__main__":
    main()
