# Everything runs inside a virtualenv in the repo (.venv), created on first use.
# Override the torch requirement for a GPU machine, e.g. `make test TORCH_SPEC="torch==2.13.0+cu128"`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
ORT_EXTRA  ?= cpu
# OpenVINO comes with the CPU setup (x86 boxes without an NVIDIA GPU run it); empty on GPU setups.
# Written with its trailing comma so an empty value leaves a valid extras list.
OV_EXTRA   ?= $(if $(filter cpu,$(ORT_EXTRA)),openvino$(comma),)
comma      := ,
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-$(ORT_EXTRA)

.PHONY: venv test lint demo bench summary clean fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[export,$(ORT_EXTRA),$(OV_EXTRA)dev]"
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# A deeper fuzz run of every file reader than `make test` does (see tests/fuzz/README.md);
# findings land in tests/fuzz/regressions/, which every test run replays.
fuzz: venv
	$(PY) -m tests.fuzz $(FUZZ_ARGS)

demo: venv
	$(PY) -m tools.demo $(DEMO_ARGS)

bench: venv
	$(PY) -m benchmarks.run --write BENCHMARKS.md $(BENCH_ARGS)

summary: venv
	$(PY) -m scaseg.summary --update-readme README.md

clean:
	rm -rf $(VENV) build *.egg-info demo_out
