# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
# Both create what they need and are safe to run again.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DIGITKIT := $(VENV)/bin/digitkit
RUNS ?= runs
STAMP := $(VENV)/.installed

.PHONY: demo test lint install bench clean

# The editable install is strict: a tree of links named as digitkit installs (build/__editable__.*/digitkit/
# {toolkit,export,runtime}), so import-linter finds all three layers under the one `digitkit` package.
# Edits show through the links; a new or removed file needs a reinstall, so the stamp depends on the list
# of package files (rewritten only when it changes).
PACKAGE_FILES := build/package-files.txt
$(shell mkdir -p build && find toolkit export runtime -type f ! -path '*/__pycache__/*' | LC_ALL=C sort > $(PACKAGE_FILES).new && (cmp -s $(PACKAGE_FILES).new $(PACKAGE_FILES) && rm $(PACKAGE_FILES).new || mv $(PACKAGE_FILES).new $(PACKAGE_FILES)))

$(STAMP): pyproject.toml constraints.txt $(PACKAGE_FILES)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=68" wheel
	$(PIP) install --quiet -c constraints.txt --config-settings editable_mode=strict -e ".[train,litert,onnxruntime,opencv,images,serve,test,lint]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(DIGITKIT) train --out $(RUNS)/train
	$(DIGITKIT) export --model $(RUNS)/train/model.keras --out $(RUNS)/export --int8
	$(PY) examples/make_sample_digit.py $(RUNS)/sample-digit.png
	$(DIGITKIT) predict $(RUNS)/sample-digit.png --model $(RUNS)/export/digit_mlp_int8.tflite
	$(DIGITKIT) verify $(RUNS)/export --report $(RUNS)/report --json $(RUNS)/verify.json

# ruff (lint, import order, format), the import-linter contracts (layers; nothing heavy in the runtime;
# device commands never import the export layer) and mypy (strict for the runtime). mypy reads the
# folders through links named as they install (digitkit.runtime, ...), as the source files themselves.
TYPECHECK := build/typecheck
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/digitkit
	for d in runtime export toolkit; do ln -s $(CURDIR)/$$d $(TYPECHECK)/digitkit/$$d; done
	ln -s $(CURDIR)/toolkit/namespace/__init__.py $(TYPECHECK)/digitkit/__init__.py
	cd $(TYPECHECK) && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml -m digitkit -p digitkit.runtime -p digitkit.export -p digitkit.toolkit

test: lint
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(RUNS) build dist *.egg-info $(STAMP)
