#!/usr/bin/env python3
"""Labelling throughput of the LM teacher (`make bench-teacher`): in process (`--teacher llm:DIR`) against
llama-cpp-python's OpenAI-compatible server (`--teacher openai:URL`) at 1, 4 and 16 requests in flight,
and two server processes of one thread each behind one `--teacher openai:URL1,URL2`. Same SmolLM2-135M
model (in process: veer's F16 conversion; server: the Q4_1 GGUF it was converted from), same prompt,
same 64 reviews plus the content-free input, a fresh label cache per run; configurations interleaved,
RUNS runs each. Texts per second from report.json's teacher seconds. Writes bench/results/teacher.json
and prints a Markdown table; asserts nothing."""
import csv, json, os, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

root = Path(__file__).resolve().parent.parent
cache = Path(os.environ.get("VEER_CACHE", root / ".cache"))
veer = root / "target/release/veer"
python = cache / "server-venv/bin/python"
gguf = cache / "SmolLM2-135M-Instruct.Q4_1.gguf"
runs = int(os.environ.get("RUNS", "3"))
prompt = "Is the following product review positive or negative?\n\nReview: {text}\n\nAnswer with one word: positive or negative."


def server(port, threads):
    p = subprocess.Popen([python, "-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                          "--n_threads", str(threads), "--model_alias", "smollm2-135m-instruct-q4_1", "--model", gguf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return p
        except OSError:
            time.sleep(0.5)
    sys.exit(f"server on port {port} did not start")


def main():
    tmp = Path(tempfile.mkdtemp(prefix="veer-bench-teacher-"))
    src = root / "tests/fixtures/data/amazon_fine_foods/train.csv"
    rows = list(csv.DictReader(open(src, newline="")))[:64]
    for name, part in (("train.csv", rows[:48]), ("test.csv", rows[48:])):
        with open(tmp / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["review", "score"], extrasaction="ignore")
            w.writeheader()
            w.writerows(part)
    texts = len({r["review"] for r in rows}) + 1
    servers = [server(18941, 2), server(18942, 1), server(18943, 1)]
    configs = [
        ("in process (llm:, F16 weights, 2 threads)", "llm:" + str(root / "www/models/smollm2-135m-instruct"), []),
        ("server, 1 in flight", "openai:http://127.0.0.1:18941", ["--concurrency", "1"]),
        ("server, 4 in flight", "openai:http://127.0.0.1:18941", ["--concurrency", "4"]),
        ("server, 16 in flight", "openai:http://127.0.0.1:18941", ["--concurrency", "16"]),
        ("2 servers × 1 thread, 4 in flight", "openai:http://127.0.0.1:18942,http://127.0.0.1:18943", ["--concurrency", "4"]),
    ]
    seconds = {name: [] for name, _, _ in configs}
    try:
        for run in range(runs):
            for name, teacher, extra in configs:
                out = tmp / f"out-{run}-{len(seconds[name])}"
                label_cache = tmp / f"cache-{name.replace(' ', '_')}-{run}"
                cmd = [veer, "distill", "--data", tmp / "train.csv", "--test", tmp / "test.csv", "--text-col", "review",
                       "--label-col", "score", "--rename", "great=positive", "--rename", "other=negative", "--labels",
                       "positive,negative", "--val-fraction", "0.1", "--prompt-chars", "400", "--prompt", prompt,
                       "--encoder", root / "www/models/all-minilm-l6-v2", "--teacher", teacher, *extra,
                       "--cache", label_cache, "--out", out]
                r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"{name}: {r.stderr}")
                s = json.load(open(out / "report.json"))["seconds"]["teacher"]
                seconds[name].append(s)
                print(f"run {run + 1}/{runs} {name}: {texts / s:.2f} texts/s", file=sys.stderr)
    finally:
        for p in servers:
            p.kill()
    base = statistics.median(texts / s for s in seconds[configs[0][0]])
    result = {"date": time.strftime("%Y-%m-%d"), "texts": texts, "runs": runs, "machine": f"{os.cpu_count()} cores",
              "configs": [{"name": n, "texts_per_s": [texts / s for s in seconds[n]]} for n, _, _ in configs]}
    (root / "bench/results").mkdir(exist_ok=True)
    json.dump(result, open(root / "bench/results/teacher.json", "w"), indent=1)
    print(f"| teacher ({texts} texts) | texts/s, median (min–max) | × in process |\n|---|---|---|")
    for c in result["configs"]:
        v = c["texts_per_s"]
        print(f"| {c['name']} | {statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f}) | {statistics.median(v) / base:.2f}× |")


if __name__ == "__main__":
    main()
