"""Write manifest.json for a models folder: every file's byte size and sha256, for the shim's integrity
checks. Hashes are cached by (size, mtime) in .hashes.json so reruns are instant."""
import hashlib
import json
import os
import sys

root = sys.argv[1]
cache_path = os.path.join(root, ".hashes.json")
try:
    cache = json.load(open(cache_path))
except (OSError, ValueError):
    cache = {}

files = {}
for folder, dirs, names in os.walk(root):
    dirs.sort()
    for name in sorted(names):
        if name.startswith(".") or (folder == root and name == "manifest.json"):
            continue
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        st = os.stat(path)
        key = f"{st.st_size}:{st.st_mtime_ns}"
        if cache.get(rel, {}).get("key") != key:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            cache[rel] = {"key": key, "sha256": h.hexdigest()}
        files[rel] = {"size": st.st_size, "sha256": cache[rel]["sha256"]}

with open(os.path.join(root, "manifest.json"), "w") as f:
    json.dump({"files": files}, f, indent=1, sort_keys=True)
    f.write("\n")
with open(cache_path, "w") as f:
    json.dump(cache, f)
print(f"manifest.json: {len(files)} files")
