#!/usr/bin/env bash
# Retrain the default classifiers (`make distill`): the heads committed in www/heads/ and their reports.
# Gold-label students are what the demo ships; the LM-teacher runs (SmolLM2 zero-shot, TnT-LLM style,
# LLKD vs random selection) only write their report. Embeddings and LM labels are cached in
# .cache/distill, so a rerun after an interruption continues where it stopped.
# sentiment-gemma / topic-gemma: the same LM-teacher runs with Gemma 3 270M (base) behind llama-cpp-python's
# OpenAI-compatible server (scripts/teacher-server.sh, scripts/teacher-models.sh), as a completion prompt;
# smaller sets than the SmolLM2 runs, as Gemma labels ≈ 0.6 texts/s here (topic: 454 texts in 731 s).
# Usage: scripts/distill.sh VEER_BINARY [sentiment|sentiment-top2|topic|sentiment-llm|topic-llm|sentiment-gemma|topic-gemma|tweets ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
veer=${1:?usage: scripts/distill.sh path/to/veer [which ...]}
shift
which=${*:-sentiment topic sentiment-llm topic-llm tweets}
models=$root/www/models
data=${VEER_CACHE:-$root/.cache}/data
amazon=$root/tests/fixtures/data/amazon_fine_foods
tmp=$(mktemp -d)
server=""
trap 'rm -rf "$tmp"; [ -z "$server" ] || kill "$server"' EXIT
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

sentiment=(--data "$amazon/train.csv" --test "$amazon/test.csv" --text-col review --label-col score
           --rename great=positive --rename other=negative --labels positive,negative)
topic=(--data "$data/bbc_news.csv" --text-col text --label-col label --rename sports=sport
       --labels business,entertainment,politics,sport,tech)
# Frozen MiniLM, pooled layers 1-6 (the middle layers carry what the similarity-trained last one lost).
student=(--encoder "$models/all-minilm-l6-v2" --layers 1,2,3,4,5,6 --compare 0.1,0.25,1 --seeds 3)

keep() { # keep NAME OUT: commit-sized results into www/heads/NAME/
  mkdir -p "$root/www/heads/$1"
  cp "$2/head.safetensors" "$2/report.json" "$root/www/heads/$1/"
}

gemma() { # start the Gemma server once; prints its --teacher
  if [ -z "$server" ]; then
    "$root/scripts/teacher-server.sh" >&2 && "$root/scripts/teacher-models.sh" >&2
    "${VEER_CACHE:-$root/.cache}/server-venv/bin/python" -m llama_cpp.server --host 127.0.0.1 --port 18961 --n_ctx 2048 --n_threads "$(nproc)" \
      --model_alias gemma-3-270m --model "${VEER_CACHE:-$root/.cache}/gemma-3-270m-q4_k_m.gguf" >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 240); do curl -sf http://127.0.0.1:18961/v1/models >/dev/null && break; sleep 0.5; done
  fi
}
gemma_teacher=(--teacher "openai:http://127.0.0.1:18961/v1#gemma-3-270m" --no-chat --concurrency 2)

for w in $which; do
  case $w in
    sentiment)
      # Student size (b), shipped: all six layers fine-tuned as rank-8 LoRA adapters with the head, which
      # starts from the frozen-encoder solution (the comparison grid is frozen heads). ≈ 26 min on 2 cores.
      say "sentiment: gold labels, LoRA fine-tuning of all six layers (≈ 26 min)"
      "$veer" distill "${sentiment[@]}" "${student[@]}" --teacher gold \
        --finetune-layers 6 --finetune-rank 8 --finetune-lr 5e-4 --finetune-epochs 3 --out "$tmp/sentiment" >/dev/null
      keep sentiment "$tmp/sentiment" ;;
    sentiment-top2)
      # Measured, not shipped: the top two layers' full weights fine-tuned, no better than a frozen head.
      say "sentiment: gold labels, top 2 layers fine-tuned (≈ 11 min)"
      "$veer" distill "${sentiment[@]}" "${student[@]}" --teacher gold --finetune-layers 2 --finetune-lr 1e-4 --finetune-epochs 3 --out "$tmp/sentiment-ft" >/dev/null
      cp "$tmp/sentiment-ft/report.json" "$root/www/heads/sentiment/report-finetune.json" ;;
    topic)
      say "topic: gold labels, frozen encoder"
      "$veer" distill "${topic[@]}" "${student[@]}" --teacher gold --out "$tmp/topic" >/dev/null
      keep topic "$tmp/topic" ;;
    sentiment-llm)
      say "sentiment: SmolLM2 zero-shot teacher (600-text pool, 500 test reviews)"
      "$veer" distill "${sentiment[@]}" "${student[@]}" --teacher "llm:$models/smollm2-135m-instruct" --select llkd --budget 0.25 \
        --limit 600 --test-limit 500 --val-fraction 0.05 --prompt-chars 400 \
        --prompt $'Is the following product review positive or negative?\n\nReview: {text}\n\nAnswer with one word: positive or negative.' \
        --out "$tmp/sentiment-llm" >/dev/null
      cp "$tmp/sentiment-llm/report.json" "$root/www/heads/sentiment/report-llm.json" ;;
    topic-llm)
      say "topic: SmolLM2 zero-shot teacher (400-article pool, 300 test articles)"
      "$veer" distill "${topic[@]}" "${student[@]}" --teacher "llm:$models/smollm2-135m-instruct" --select llkd --budget 0.25 \
        --limit 400 --test-limit 300 --val-fraction 0.05 --prompt-chars 400 \
        --out "$tmp/topic-llm" >/dev/null
      cp "$tmp/topic-llm/report.json" "$root/www/heads/topic/report-llm.json" ;;
    sentiment-gemma)
      say "sentiment: Gemma 3 270M (base) zero-shot teacher through llama-cpp-python's server"
      gemma
      "$veer" distill "${sentiment[@]}" "${student[@]}" "${gemma_teacher[@]}" --select llkd --budget 0.25 \
        --limit 200 --test-limit 200 --val-fraction 0.02 --prompt-chars 400 \
        --prompt $'Review: {text}\n\nQuestion: Is this product review positive or negative?\nAnswer:' \
        --out "$tmp/sentiment-gemma" >/dev/null
      cp "$tmp/sentiment-gemma/report.json" "$root/www/heads/sentiment/report-gemma.json" ;;
    topic-gemma)
      say "topic: Gemma 3 270M (base) zero-shot teacher through llama-cpp-python's server"
      gemma
      "$veer" distill "${topic[@]}" "${student[@]}" "${gemma_teacher[@]}" --select llkd --budget 0.25 \
        --limit 200 --test-limit 200 --val-fraction 0.03 --prompt-chars 400 \
        --prompt $'Article: {text}\n\nQuestion: Which section of the newspaper is this article from: {labels}?\nAnswer:' \
        --out "$tmp/topic-gemma" >/dev/null
      cp "$tmp/topic-gemma/report.json" "$root/www/heads/topic/report-gemma.json" ;;
    tweets)
      say "tweets (3-class, the harder case): gold labels, 6000-tweet pool"
      "$veer" distill --data "$data/tweets.csv" --text-col text --label-col sentiment --labels negative,neutral,positive \
        "${student[@]}" --teacher gold --limit 6000 --test-limit 2000 --val-fraction 0.03 --out "$tmp/tweets" >/dev/null
      mkdir -p "$root/www/heads/tweets" && cp "$tmp/tweets/report.json" "$root/www/heads/tweets/report.json" ;;
    *) echo "unknown: $w" >&2; exit 1 ;;
  esac
done
