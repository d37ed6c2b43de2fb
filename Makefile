# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Override to install other builds, e.g. `make test CONSTRAINTS=` on a GPU machine.
CONSTRAINTS ?= constraints-cpu.txt
EXTRAS ?= train,export,dev
DEMO_DIR ?= demo-output
STAMP := $(VENV)/.sketchsearch-installed

.PHONY: venv venv-gpu demo test lint typecheck pytest clean

venv: $(STAMP)

# Reinstall when the dependency declarations change.
$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.1"
	$(PY) -m pip install $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[$(EXTRAS)]"
	touch $@

# onnxruntime-gpu and onnxruntime install the same module and cannot share an environment.
venv-gpu: $(STAMP)
	$(PY) -m pip install -e ".[gpu]"
	$(PY) -m pip uninstall --yes onnxruntime
	$(PY) -m pip install --force-reinstall --no-deps "onnxruntime-gpu>=1.17"

# The main job on the embedded default: synthetic data, a leak-free split, a trained model and its
# test metrics beside the same architecture untrained.
demo: $(STAMP)
	$(BIN)/sketchsearch data synth --out $(DEMO_DIR)/data --overwrite --categories 24 \
		--photos-per-category 30 --sketches-per-photo 2 --size 96 \
		--contact-sheet $(DEMO_DIR)/contact_sheet.png
	$(BIN)/sketchsearch data split $(DEMO_DIR)/data --out $(DEMO_DIR)/split.json \
		--policy soft --seed 0
	$(BIN)/sketchsearch train --config configs/demo.yaml --data $(DEMO_DIR)/data \
		--split $(DEMO_DIR)/split.json --out $(DEMO_DIR)/run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the editable install's import hook, so it reads the torch-free layers
# through a symlinked `sketchsearch/` namespace under build/.
TYPECHECKED := data gallery runtime
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/sketchsearch
	for d in $(TYPECHECKED); do ln -s ../../../$$d build/typecheck/sketchsearch/$$d; done
	MYPYPATH=build/typecheck $(BIN)/mypy $(addprefix -p sketchsearch.,$(TYPECHECKED))

# pytest exits 5 when it collects no test; that is a failure here, like any non-zero code.
pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
