# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing.
SHELL := /bin/bash
# A failing command anywhere in a pipe (e.g. `data list | retrieve | tee`) fails the target.
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Override to install other builds, e.g. `make test CONSTRAINTS=` on a GPU machine.
CONSTRAINTS ?= constraints-cpu.txt
EXTRAS ?= train,export,realdata,openvino,serve,shards,ray,qdrant,triton,dev
DEMO_DIR ?= demo-output
OPENMOJI_DIR ?= openmoji
SEED ?= 0
STAMP := $(VENV)/.sketchsearch-installed

.PHONY: venv venv-gpu demo test lint typecheck pytest clean openmoji openmoji-baselines openmoji-train \
	figures figures-check

venv: $(STAMP)

# Reinstall when the dependency declarations change.
$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23.1"
	$(PY) -m pip install $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[$(EXTRAS)]"
	touch $@

# What benchmarks/gpu.sh needs: onnxruntime-gpu and a pinned TensorRT + cuda-python pair.
# The default, TRT_EXTRA=tensorrt-cu13 (CUDA 13, driver >= 580.65.06), is the pair that fits
# the torch in $(CONSTRAINTS): torch 2.14.1 is a CUDA 13 build that requires
# cuda-bindings>=13.0.3,<14, and it is installed under the same constraints, so pip keeps it.
# TRT_EXTRA=tensorrt (CUDA 12, driver >= 525.60.13, cuda-python<13) needs a CUDA 12 torch:
# install a cu12 torch first, then `make venv-gpu CONSTRAINTS= TRT_EXTRA=tensorrt`.
# tests/test_gpu_pins.py checks the default against the pinned torch. Needs network:
# TensorRT's libraries download from NVIDIA's index. Then
# `python -m sketchsearch.runtime.cuda_stack` checks the pair against the driver.
# onnxruntime-gpu and onnxruntime install the same module and cannot share an environment.
TRT_EXTRA ?= tensorrt-cu13
NVIDIA_INDEX ?= https://pypi.nvidia.com
venv-gpu: $(STAMP)
	$(PY) -m pip install $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) --extra-index-url $(NVIDIA_INDEX) \
		-e ".[gpu,$(TRT_EXTRA)]"
	$(PY) -m pip uninstall --yes onnxruntime
	$(PY) -m pip install --force-reinstall --no-deps "onnxruntime-gpu>=1.17"

# The main job on the embedded default: synthetic data, a leak-free split, a trained model and its
# test metrics beside the same architecture untrained; then the serving path: export to ONNX
# (verified against the checkpoint), a gallery of the test photos, evaluation, and retrieve for
# one test sketch per category with a result grid.
demo: $(STAMP)
	$(BIN)/sketchsearch data synth --out $(DEMO_DIR)/data --overwrite --categories 24 \
		--photos-per-category 30 --sketches-per-photo 2 --size 96 \
		--contact-sheet $(DEMO_DIR)/contact_sheet.png
	$(BIN)/sketchsearch data split $(DEMO_DIR)/data --out $(DEMO_DIR)/split.json \
		--policy soft --seed 0
	$(BIN)/sketchsearch train --config configs/demo.yaml --data $(DEMO_DIR)/data \
		--split $(DEMO_DIR)/split.json --out $(DEMO_DIR)/run
	$(BIN)/sketchsearch export onnx --checkpoint $(DEMO_DIR)/run/best.ckpt \
		--output $(DEMO_DIR)/model.onnx
	rm -rf $(DEMO_DIR)/gallery
	$(BIN)/sketchsearch gallery build --engine $(DEMO_DIR)/model.onnx \
		--split $(DEMO_DIR)/split.json:test --data $(DEMO_DIR)/data --domain photo \
		--out $(DEMO_DIR)/gallery
	$(BIN)/sketchsearch evaluate --engine $(DEMO_DIR)/model.onnx --index $(DEMO_DIR)/gallery \
		--split $(DEMO_DIR)/split.json:test --data $(DEMO_DIR)/data \
		--json $(DEMO_DIR)/evaluation.json
	$(BIN)/sketchsearch data list $(DEMO_DIR)/split.json:test --data $(DEMO_DIR)/data \
		--domain sketch --per-category 1 --limit 6 \
		| $(BIN)/retrieve --engine $(DEMO_DIR)/model.onnx --queries-from - -k 5 \
			--grid $(DEMO_DIR)/retrieve_grid.png | tee $(DEMO_DIR)/retrieve.txt
	@echo
	@echo "demo outputs in $(DEMO_DIR)/: run/ (checkpoints, metrics), model.onnx (+ .verify.json),"
	@echo "  gallery/, evaluation.json, retrieve.txt and retrieve_grid.png"
	@echo "try: $(BIN)/retrieve --engine $(DEMO_DIR)/model.onnx --query <image>"
	@echo "serve the demo model and gallery, then draw a sketch at http://127.0.0.1:8080/ :"
	@echo "  $(BIN)/sketchsearch serve --engine $(DEMO_DIR)/model.onnx --index $(DEMO_DIR)/gallery"

# The real-data benchmark (README: "Real data: the OpenMoji benchmark"): OpenMoji 17.0.0's line
# drawings (queries) and colour images (gallery), rendered once, and the zero-shot split that
# holds out the subgroups listed in benchmarks/real/openmoji_heldout.txt.
$(OPENMOJI_DIR)/data/openmoji-build.json: | $(STAMP)
	$(PY) -m sketchsearch.benchmarks.real.openmoji --out $(OPENMOJI_DIR)/data --overwrite

$(OPENMOJI_DIR)/split.json: $(OPENMOJI_DIR)/data/openmoji-build.json benchmarks/real/openmoji_heldout.txt
	$(BIN)/sketchsearch data split $(OPENMOJI_DIR)/data --layout paired --domains sketch,photo \
		--policy hard --classes-file benchmarks/real/openmoji_heldout.txt --out $@ > /dev/null

openmoji: $(OPENMOJI_DIR)/split.json

openmoji-baselines: openmoji
	$(PY) -m sketchsearch.benchmarks.real.quality --split $(OPENMOJI_DIR)/split.json \
		--data $(OPENMOJI_DIR)/data --baseline pixels --baseline edges \
		--json $(OPENMOJI_DIR)/baselines.json

# Train the zero-shot recipe (configs/zero-shot.yaml) and score it beside every baseline.
openmoji-train: openmoji
	$(BIN)/sketchsearch train --config configs/zero-shot.yaml --data $(OPENMOJI_DIR)/data \
		--split $(OPENMOJI_DIR)/split.json --out $(OPENMOJI_DIR)/run-seed$(SEED) --seed $(SEED)
	$(PY) -m sketchsearch.benchmarks.real.quality --split $(OPENMOJI_DIR)/split.json \
		--data $(OPENMOJI_DIR)/data --model $(OPENMOJI_DIR)/run-seed$(SEED)/best.ckpt \
		--rerank none --rerank aqe --rerank kreciprocal \
		--json $(OPENMOJI_DIR)/quality-seed$(SEED).json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the editable install's import hook, so it reads the torch-free layers and
# the command-line floor through a symlinked `sketchsearch/` namespace under build/ (the torch
# layers are not linked: what the commands import from them is Any).
TYPECHECKED := data gallery runtime cli
# The TensorRT modules are checked against tensorrt-stubs, which tools/tensorrt_stubs.py fetches
# from PyPI into build/stubs once (TensorRT itself needs NVIDIA's index). Exit code 75 from it
# means PyPI is out of reach: those modules are then reported as not checked.
TENSORRT_MODULES := export.tensorrt_build cli.tensorrt_commands runtime.engines.tensorrt_engine
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/sketchsearch
	for d in $(TYPECHECKED); do ln -sfn ../../../$$d build/typecheck/sketchsearch/$$d; done
	MYPYPATH=build/typecheck $(BIN)/mypy $(addprefix -p sketchsearch.,$(TYPECHECKED))
	ln -sfn ../../../export build/typecheck/sketchsearch/export
	if $(PY) tools/tensorrt_stubs.py --dest build/stubs; then \
		MYPYPATH=build/typecheck:build/stubs $(BIN)/mypy --config-file mypy-tensorrt.ini \
			$(addprefix -m sketchsearch.,$(TENSORRT_MODULES)); \
	else status=$$?; test $$status -eq 75 && \
		echo "typecheck: no tensorrt-stubs (PyPI out of reach): TensorRT modules NOT checked"; fi

# pytest exits 5 when it collects no test; that is a failure here, like any non-zero code.
pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# Rerun every README figure into readme-figures/NAME/ (hours on 2 cores); ARGS="--only NAME"
# for one. figures-check: every figure in README.md has its machine and command (also a test).
figures: $(STAMP)
	$(PY) tools/readme_figures.py --out readme-figures $(ARGS)

figures-check: $(STAMP)
	$(PY) tools/readme_figures.py --check

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(OPENMOJI_DIR) build *.egg-info
