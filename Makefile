# bakery.ec2 — every command a user or CI needs. Run as root on Debian.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
# The collection is seen by Ansible through this path (a link to the checkout).
COLLECTIONS := $(CURDIR)/.build/collections
COLL_LINK := $(COLLECTIONS)/ansible_collections/bakery/ec2
# ansible-test needs a real (not linked) tree under ansible_collections/bakery/ec2.
SANITY_ROOT := $(CURDIR)/.build/sanity
SANITY_COLL := $(SANITY_ROOT)/ansible_collections/bakery/ec2

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0

step = @printf '\n==> %s\n' "$(1)"

.PHONY: help
help:
	@echo "make demo      set up, start the sandbox, run the whole flow (launch, configure, image, clone)"
	@echo "make test      set up and run every check: lint, sanity, unit, integration, Molecule"
	@echo "make venv      create the project virtualenv ($(VENV)) from requirements-dev.txt"
	@echo "make lint      ruff + ansible-lint (production profile)"
	@echo "make sanity    ansible-test sanity"
	@echo "make unit      unit tests (botocore Stubber)"
	@echo "make integration  integration tests against a local moto server"
	@echo "make bench     benchmarks against the peers (bench/RESULTS.md)"
	@echo "make bench-smoke  a quick benchmark run (< 1 min) that checks the harness works"

$(BIN)/.stamp: requirements-dev.txt requirements.txt
	$(call step,virtualenv $(VENV) from requirements-dev.txt)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

.PHONY: venv
venv: $(BIN)/.stamp $(COLL_LINK)

$(COLL_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn $(CURDIR) $@

.PHONY: ruff
ruff: venv
	$(call step,ruff check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: ansible-lint
ansible-lint: venv
	$(call step,ansible-lint (profile production))
	$(BIN)/ansible-lint

.PHONY: lint
lint: ruff ansible-lint

.PHONY: sanity
sanity: venv
	$(call step,ansible-test sanity (python 3.11))
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_COLL)
	@git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -a {} $(SANITY_COLL)/ 2>/dev/null || true
	@# ansible-test fetches a pip bootstrap script from a host outside the package registries; give it ours.
	@v=$$(sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" $(VENV)/lib/python3.11/site-packages/ansible_test/_internal/python_requirements.py); \
	  mkdir -p $$HOME/.ansible/test/cache && cp tests/sanity/bootstrap_pip.py "$$HOME/.ansible/test/cache/get_pip_$${v//./_}.py"
	cd $(SANITY_COLL) && git init -q && git add -A && \
	  $(BIN)/ansible-test sanity --color no --python 3.11 --venv --requirements

.PHONY: unit
unit: venv
	$(call step,unit tests (pytest tests/unit))
	$(BIN)/pytest -q tests/unit

.PHONY: integration
integration: venv
	$(call step,integration tests against moto on 127.0.0.1 (pytest tests/integration))
	$(BIN)/pytest -q tests/integration

.PHONY: test
test: lint sanity unit integration
	@printf '\n==> make test: every step passed\n'

# --- benchmarks: the peer lives in its own virtualenv, used by nothing else ---
BENCH_VENV := $(CURDIR)/.venv-bench

$(BENCH_VENV)/bin/.stamp: bench/requirements.txt
	$(call step,benchmark virtualenv $(BENCH_VENV) from bench/requirements.txt)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

.PHONY: bench-inventory
bench-inventory: venv $(BENCH_VENV)/bin/.stamp
	$(call step,inventory benchmark: bakery.ec2.instances vs aws_ec2 vs boto3 (bench/RESULTS.md))
	$(BIN)/python bench/inventory/run.py --runs 5 --output bench/RESULTS.md

.PHONY: bench-smoke
bench-smoke: venv
	$(call step,inventory benchmark smoke run (1,000 instances, ours and the boto3 floor))
	$(BIN)/python bench/inventory/run.py --smoke

.PHONY: bench
bench: bench-inventory

.PHONY: clean
clean:
	rm -rf .build .pytest_cache .ruff_cache tests/output .venv-bench
