#!/usr/bin/env python3
"""Training and held-out data for the judges of `make steer-eval` (bench/steer/judges/), from the
datasets `make assets` fetches: sentiment = CrowdFlower tweets labelled negative / positive (neutral
dropped); formality = tweets (informal) against sentences of BBC news articles (formal). Balanced,
seeded; BBC sentences split by article so no article feeds both sides of the split.

Usage: steer-judges.py DATA_DIR OUT_DIR
"""
import csv, json, random, re, sys
from pathlib import Path

data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
rng = random.Random(14)
TRAIN, TEST = 2000, 500


def clean(t):
    t = t.replace("_\ufffd_", " ").replace("\ufffd", " ")
    t = re.sub(r"https?://\S+", "", t)
    return re.sub(r"\s+", " ", t).strip()


tweets = [r for r in csv.DictReader(open(data / "tweets.csv", encoding="utf-8", errors="replace"))]
by = {"negative": [], "positive": []}
informal = []
for r in tweets:
    t = clean(r["text"])
    if len(t.split()) < 5:
        continue
    informal.append(t)
    if r["sentiment"] in by and float(r["confidence"] or 0) >= 0.6:
        by[r["sentiment"]].append(t)


def write(name, rows):
    rng.shuffle(rows)
    with open(out / name, "w") as f:
        for text, label in rows:
            f.write(json.dumps({"text": text, "label": label}) + "\n")


sent_train, sent_test = [], []
for label, texts in by.items():
    texts = sorted(set(texts))
    rng.shuffle(texts)
    assert len(texts) >= TRAIN + TEST, (label, len(texts))
    sent_train += [(t, label) for t in texts[:TRAIN]]
    sent_test += [(t, label) for t in texts[TRAIN:TRAIN + TEST]]
write("sentiment-train.jsonl", sent_train)
write("sentiment-test.jsonl", sent_test)

articles = [r["text"] for r in csv.DictReader(open(data / "bbc_news.csv", encoding="utf-8", errors="replace"))]
rng.shuffle(articles)
cut = len(articles) * 4 // 5


def sentences(arts):
    out = []
    for a in arts:
        body = a.split("\n", 1)[-1]  # the first line is the headline
        for s in re.split(r"(?<=[.!?])\s+", body.replace("\n", " ")):
            s = clean(s)
            if 8 <= len(s.split()) <= 40 and not s.startswith('"'):
                out.append(s)
    rng.shuffle(out)
    return out


formal_train, formal_test = sentences(articles[:cut]), sentences(articles[cut:])
informal = sorted(set(informal))
rng.shuffle(informal)
write("formality-train.jsonl", [(t, "formal") for t in formal_train[:TRAIN]] + [(t, "informal") for t in informal[:TRAIN]])
write("formality-test.jsonl", [(t, "formal") for t in formal_test[:TEST]] + [(t, "informal") for t in informal[TRAIN:TRAIN + TEST]])
print(json.dumps({k: len(v) for k, v in {"negative": by["negative"], "positive": by["positive"], "informal": informal, "formal_train": formal_train, "formal_test": formal_test}.items()}))
