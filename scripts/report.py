"""Markdown tables from `veer distill` report.json files (what docs/distillation.md shows).
Usage: report.py REPORT.json [...]"""
import json
import os
import sys


def short(name):
    """llm:/abs/path/smollm2-135m-instruct -> llm:smollm2-135m-instruct; openai:URL#MODEL -> openai:MODEL"""
    if name.startswith("openai:"):
        return "openai:" + name.rpartition("#")[2] if "#" in name else name
    kind, _, path = name.rpartition(":")
    return f"{kind}:{os.path.basename(path.rstrip('/'))}" if kind else name


for path in sys.argv[1:]:
    r = json.load(open(path))
    d, s = r["data"], r["student"]
    print(f"**{os.path.relpath(path)}** — labels {', '.join(d['labels'])}; pool {d['pool']}, val {d['val']}, test {d['test_size']}; teacher `{short(r['teacher'])}`\n")
    print("| model | labels from | selection | budget | samples | accuracy | macro-F1 |")
    print("|---|---|---|---|---|---|---|")
    for c in r["comparison"]:
        std = f" ± {c['accuracy_std']:.3f}" if c.get("accuracy_std") else ""
        budget = f"{c['budget']:.0%}" if c.get("budget") is not None else "—"
        select = c.get("select") or "—"
        print(f"| {c['name']} | {short(c['labels_from'])} | {select} | {budget} | {c['samples']} | {c['test']['accuracy']:.3f}{std} | {c['test']['macro_f1']:.3f} |")
    ft = s.get("finetune")
    if s.get("test"):
        lora = f", LoRA rank {ft['rank']}" if ft and ft.get("rank") else ""
        what = f"fine-tuned top {ft['layers']} layers{lora} + head" if ft else "frozen encoder + head"
        print(f"| **exported student** ({what}) | {short(r['teacher'])} | {s['select']} | {s['budget']:.0%} | {s['samples']} | **{s['test']['accuracy']:.3f}** | {s['test']['macro_f1']:.3f} |")
    print(f"\nStudent: MiniLM-L6 ({s['encoder_params'] / 1e6:.1f} M parameters) + head ({s['head']['params']} parameters, "
          f"head.safetensors {s['head']['bytes'] / 1024:.0f} KiB); packed model.safetensors {s['model_bytes'] / 2**20:.1f} MiB ({s['dtype']}). "
          f"Time: embeddings {r['seconds']['embed']:.0f} s, teacher {r['seconds']['teacher']:.0f} s, training {r['seconds']['train']:.1f} s"
          + (f", fine-tuning {ft['stats']['seconds'] / 60:.1f} min (best epoch {ft['stats']['best_epoch']} of {ft['epochs']}"
             + (f", {ft['stats']['trainable'] / 1e6:.2f} M trainable parameters" if ft["stats"].get("trainable") else "")
             + (f"; the frozen-encoder head it started from: {ft['frozen_test']['accuracy']:.3f}" if ft.get("frozen_test") else "")
             + ")" if ft else "")
          + ".\n")
