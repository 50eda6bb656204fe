# hevcq: the targets a newcomer guesses. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
MEDIA ?=
OUT ?= hevcq-out
# pytest-xdist workers for `make test`; tests that must not overlap share a group. Three on
# two cores: much of the suite waits on timers (leases, outages, polls), and a third worker
# fills that time (on two cores, 2 workers left 40 % of the CPU idle and took 820-870 s;
# 3 took 675 s).
TEST_WORKERS ?= 3
# A local mirror of the hashicorp/aws provider for machines without registry access.
# Leave empty (the default when the folder does not exist) to download providers as usual.
TF_PLUGIN_DIR ?= $(firstword $(wildcard /opt/tf-plugins))
TF_DIR := infra/terraform
TF_INIT_FLAGS := $(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR),)
export TF_PLUGIN_DIR
# Scanners that pin their own dependencies live in a venv of their own (see `tools`).
TOOLS_VENV ?= .venv-tools
TOOLS_REQUIREMENTS := $(TF_DIR)/requirements-tools.txt
CHECKOV ?= $(abspath $(TOOLS_VENV))/bin/checkov
export CHECKOV

# Debian packages some end-to-end tests need: libfaketime (wall-clock skew and steps in
# worker processes) and chromium (the dashboard's browser test). CI installs what is
# missing; elsewhere those tests skip with a note.
SYSTEM_PACKAGES := faketime chromium

.PHONY: install bytecode tools system-deps run test test-unit chaos lint bench build image plan apply destroy clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed ## Create .venv and install hevcq with its test tools.

# An editable install leaves hevcq's own modules uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set (many CI images and containers) every process compiled
# all of them again as it started: 0.5 s of CPU for each worker, command and endpoint, and
# the suite starts them by the hundred. compileall writes them whatever that setting, and
# redoes only what changed since.
bytecode: install
	@$(BIN)/python -m compileall -q src tests

$(TOOLS_VENV)/.installed: $(TOOLS_REQUIREMENTS)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r $(TOOLS_REQUIREMENTS)
	touch $@

tools: $(TOOLS_VENV)/.installed ## Terraform scanners (checkov) in their own venv.

run: bytecode ## Transcode MEDIA (default: a generated sample library) on the embedded local farm.
	@if [ -n "$(MEDIA)" ]; then \
		$(BIN)/hevcq ingest "$(MEDIA)" --out "$(OUT)"; \
	else \
		$(BIN)/hevcq sample .hevcq-sample || exit $$?; \
		$(BIN)/hevcq ingest .hevcq-sample --out "$(OUT)"; rc=$$?; \
		if [ $$rc -eq 1 ]; then \
			echo "(The failed row is expected: the sample library holds a file that is not a video.)"; \
			rc=0; \
		fi; \
		exit $$rc; \
	fi

system-deps: ## Debian packages for the end-to-end tests (installed only when CI is set).
	@if [ -n "$$CI" ]; then \
		missing=""; \
		for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		fi; \
	fi

test: lint tools system-deps bytecode ## Lint and types, then the whole suite: unit, moto, end to end, terraform and containers.
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

test-unit: install
	$(BIN)/python -m pytest tests/unit

chaos: bytecode ## Both chaos tests at full size: 100 jobs each, as the reliability promise was proven.
	CHAOS_JOBS=100 $(BIN)/python -m pytest tests/e2e/test_reliability.py -k chaos -s

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

$(BIN)/.bench-installed: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(BIN)/.bench-installed ## Speed, memory and cost figures, written to benchmarks/results/.
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

build: install ## The wheel the container images install.
	$(BIN)/python -m pip wheel --no-deps -w dist .

image: build ## Container images (needs a Docker engine).
	docker build -f docker/worker.Dockerfile -t hevcq-worker .
	docker build -f docker/cli.Dockerfile -t hevcq-cli .
	docker build --platform linux/amd64 -f docker/api.Dockerfile -t hevcq-api .

plan:
	terraform -chdir=$(TF_DIR) init -input=false $(TF_INIT_FLAGS)
	terraform -chdir=$(TF_DIR) plan -input=false -out=hevcq.tfplan

apply:
	terraform -chdir=$(TF_DIR) apply -input=false hevcq.tfplan
	$(BIN)/hevcq config from-terraform

destroy:
	terraform -chdir=$(TF_DIR) destroy -input=false

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hevcq-sample $(OUT)
