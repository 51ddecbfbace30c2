#!/usr/bin/env python3
"""Lists file cycles (and cycles between top-level modules) in the library and in cmke: file A uses an item defined in file B and B,
directly or through others, uses one defined in A. A use through a re-export counts against
the file that defines the item; a `pub use` in a module file counts against the file it names.
Exits 1 when there is a cycle. Run from the repository root."""
import os
import re
import sys

USE = re.compile(r"^([ \t]*)(?:pub(?:\([\w ]+\))? )?use ((?:crate|super|self|\w+)::[^;]*);", re.M)
MOD = re.compile(r"^[ \t]*(?:pub(?:\([\w ]+\))? )?mod (\w+);", re.M)
RELATIVE = re.compile(r"(?<![\w:])((?:\w+::)+\w+)(?!::|\w)")
INLINE = re.compile(r"\bcrate::((?:\w+::)*\w+)(?!::|\w)")


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def split_top(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out if x.strip()]


def expand(prefix, tree):
    tree = re.sub(r"\s+", " ", tree.strip())
    if tree.endswith("}"):
        head, _, body = tree.partition("{")
        base = prefix + [x for x in head.rstrip(":").split("::") if x]
        return [p for item in split_top(body[:-1]) for p in expand(base, item)]
    tree = tree.split(" as ")[0].strip()
    return [prefix + [x for x in tree.split("::") if x]]


class Crate:
    def __init__(self, root_file):
        self.files = {}  # module path tuple -> file
        self.children = {}  # module path -> set of child names
        self.reexports = {}  # module path -> {name: absolute path list}
        self.globs = {}  # module path -> [absolute module path]
        self.uses = {}  # file -> [absolute path list]
        self.load((), root_file)

    def load(self, module, path):
        self.files[module] = path
        self.children[module] = set()
        text = strip_comments(open(path).read())
        base = os.path.dirname(path)
        if os.path.basename(path) not in ("lib.rs", "main.rs", "mod.rs"):
            base = os.path.join(base, os.path.basename(path)[:-3])
        for name in MOD.findall(text):
            for candidate in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(candidate):
                    self.children[module].add(name)
                    self.load(module + (name,), candidate)
                    break
        used = []
        for m in USE.finditer(text):
            indented = bool(m.group(1))
            for segs in expand([], m.group(2)):
                absolute = self.absolute(module, segs, indented)
                if absolute is None:
                    continue
                if segs[-1] == "*":
                    self.globs.setdefault(module, []).append(absolute[:-1])
                    used.append(absolute[:-1] + ["*"])
                    continue
                if not indented and m.group(0).lstrip().startswith("pub"):
                    self.reexports.setdefault(module, {})[absolute[-1] if absolute[-1] != "self" else absolute[-2]] = absolute
                used.append(absolute)
        for m in INLINE.finditer(text):
            used.append(m.group(1).split("::"))
        # Paths in code through `super::` or a child module; a test module's `super` is
        # the file itself, so test modules at the end of a file are left out here.
        code = USE.sub("", text.split("#[cfg(test)]\nmod ")[0])
        for m in RELATIVE.finditer(code):
            segs = m.group(1).split("::")
            if segs[0] == "super" and module:
                used.append(list(module[:-1]) + segs[1:])
            elif segs[0] in self.children[module]:
                used.append(list(module) + segs)
        self.uses[path] = used

    def absolute(self, module, segs, indented):
        segs = list(segs)
        if segs[0] == "crate":
            return segs[1:]
        if segs[0] not in ("super", "self"):
            # A path from a child module of this one; anything else is another crate.
            return list(module) + segs if segs[0] in self.children.get(module, ()) else None
        here = list(module)
        # `super` inside an inline module (indented) is the file's own module.
        first = True
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super" and not (first and indented):
                if not here:
                    return None
                here.pop()
            segs.pop(0)
            first = False
        return here + segs

    def defining_file(self, segs, depth=0):
        module = ()
        segs = [s for s in segs if s != "self"]
        for i, seg in enumerate(segs):
            if seg in self.children.get(module, ()):
                module = module + (seg,)
                continue
            target = self.reexports.get(module, {}).get(seg)
            if target is not None and depth < 20 and target != segs[: i + 1]:
                return self.defining_file(target + segs[i + 1 :], depth + 1)
            return self.files[module]
        return self.files[module]

    def graph(self):
        edges = {f: set() for f in self.uses}
        for file, used in self.uses.items():
            for segs in used:
                if segs and segs[-1] == "*":
                    target = self.files.get(tuple(segs[:-1]))
                else:
                    target = self.defining_file(segs) if segs else None
                if target and target != file:
                    edges[file].add(target)
        return edges


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    found = 0
    for root in ("src/lib.rs", "src/bin/cmke/main.rs"):
        edges = Crate(root).graph()
        for component in cycles(edges):
            found += 1
            print(f"cycle in {root}: " + ", ".join(component))
            for f in component:
                back = sorted(t for t in edges[f] if t in component)
                print(f"    {f} uses {', '.join(back)}")
        # The same one level up: the top-level modules (folders) must not import each other
        # back either.
        base = os.path.dirname(root)
        top = lambda f: os.path.relpath(f, base).split(os.sep)[0].removesuffix(".rs")
        modules = {}
        for f, targets in edges.items():
            for t in targets:
                if top(f) != top(t):
                    modules.setdefault(top(f), set()).add(top(t))
        for component in cycles(modules):
            found += 1
            print(f"module cycle in {root}: " + ", ".join(component))
        print(
            f"{root}: {len(edges)} files, {sum(map(len, edges.values()))} file dependencies, "
            f"{len(modules)} top-level modules"
        )
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
