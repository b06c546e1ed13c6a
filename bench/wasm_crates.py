"""Code bytes per crate in a wasm module that still has its `name` section (cargo's output before
wasm-bindgen/wasm-opt): each function body is charged to the crate its (legacy-mangled) name starts
with; for `<A as B>::f` impls, to A's crate. Usage: python3 bench/wasm_crates.py MODULE.wasm [TOP]"""
import collections
import re
import sys


def leb(b, i):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def sections(b):
    i = 8
    while i < len(b):
        sid = b[i]
        n, i = leb(b, i + 1)
        yield sid, i, i + n
        i += n


def crate(name):
    if not name.startswith("_ZN"):
        return name.split("::")[0][:30]
    i, first = 3, None
    if i < len(name) and name[i].isdigit():
        j = i
        while name[j].isdigit():
            j += 1
        first = name[j : j + int(name[i:j])]
    if first is None:
        return "?"
    first = re.sub(r"^_?(\$LT\$|\$RF\$|\$u20\$|\$BP\$|\$u5b\$|mut|dyn|const)*", "", first)
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", first)
    return m.group(0) if m else "?"


b = open(sys.argv[1], "rb").read()
imported, sizes, names = 0, [], {}
for sid, start, end in sections(b):
    if sid == 2:  # imports: function indices start after the imported functions
        count, j = leb(b, start)
        for _ in range(count):
            for _ in range(2):
                n, j = leb(b, j)
                j += n
            kind = b[j]
            j += 1
            if kind == 0:
                _, j = leb(b, j)
                imported += 1
            elif kind == 1:
                j += 1
                flags = b[j]
                _, j = leb(b, j + 1)
                if flags & 1:
                    _, j = leb(b, j)
            elif kind == 2:
                flags = b[j]
                _, j = leb(b, j + 1)
                if flags & 1:
                    _, j = leb(b, j)
            elif kind == 3:
                j += 2
    elif sid == 10:
        count, j = leb(b, start)
        for _ in range(count):
            size, k = leb(b, j)
            sizes.append(size + k - j)
            j = k + size
    elif sid == 0:
        n, j = leb(b, start)
        if b[j : j + n] == b"name":
            j += n
            while j < end:
                sub = b[j]
                length, j = leb(b, j + 1)
                if sub == 1:
                    count, k = leb(b, j)
                    for _ in range(count):
                        idx, k = leb(b, k)
                        n2, k = leb(b, k)
                        names[idx] = b[k : k + n2].decode("utf8", "replace")
                        k += n2
                j += length
if not names:
    sys.exit("no name section: use cargo's output, before wasm-bindgen and wasm-opt")
per = collections.Counter()
for k, size in enumerate(sizes):
    per[crate(names.get(k + imported, "?"))] += size
total = sum(sizes)
print(f"code: {total / 1e6:.2f} MB in {len(sizes)} functions")
for name, size in per.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 25):
    print(f"{size / 1e6:7.3f} MB {100 * size / total:5.1f}%  {name}")
