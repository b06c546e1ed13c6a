"""Labelled example sets for the in-browser training measurements (bench/train.mjs, `make bench-train`):
k examples per label from BBC News (topic, 5 labels) and the driverless-car tweets (sentiment, 3
labels), seeded, plus a fixed test set of 50 per label disjoint from every training set. JSONL lines
{"text", "label"}, the shape `trainClassifier` and `veer train` take. Texts are cut to their first 600
characters (a BBC article's opening paragraph names its topic; the whole article would take the browser
minutes per run at MiniLM's 256 tokens).

usage: python3 bench/train_data.py DATA_DIR OUT_DIR
"""
import csv
import json
import random
import sys
from pathlib import Path

data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
tasks = {
    "bbc": (data / "bbc_news.csv", "text", "label", None),
    "tweets": (data / "tweets.csv", "text", "sentiment", ["negative", "neutral", "positive"]),
}
for task, (path, text_col, label_col, keep) in tasks.items():
    rows = [(" ".join(r[text_col].split())[:600], r[label_col].strip()) for r in csv.DictReader(open(path, encoding="utf-8", errors="replace"))]
    rows = [r for r in rows if r[0] and (keep is None or r[1] in keep)]
    by_label = {}
    for t, l in rows:
        by_label.setdefault(l, []).append(t)
    rng = random.Random(7)
    for l in by_label:
        rng.shuffle(by_label[l])
    labels = sorted(by_label)
    test = [(t, l) for l in labels for t in by_label[l][:50]]
    random.Random(8).shuffle(test)
    with open(out / f"{task}-test.jsonl", "w") as f:
        for t, l in test:
            f.write(json.dumps({"text": t, "label": l}) + "\n")
    for k in (8, 32, 128):
        train = [(t, l) for l in labels for t in by_label[l][100:100 + k]]
        random.Random(k).shuffle(train)
        with open(out / f"{task}-{k}.jsonl", "w") as f:
            for t, l in train:
                f.write(json.dumps({"text": t, "label": l}) + "\n")
    if task == "tweets":
        # Training-time sets of 50 and 500 examples (label shares as in the data).
        pool = [(t, l) for l in labels for t in by_label[l][100:]]
        random.Random(9).shuffle(pool)
        for n in (50, 500):
            with open(out / f"{task}-n{n}.jsonl", "w") as f:
                for t, l in pool[:n]:
                    f.write(json.dumps({"text": t, "label": l}) + "\n")
    print(task, labels, {l: len(v) for l, v in by_label.items()})
