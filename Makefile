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
	@echo "make demo          set up, start the sandbox, run the whole flow (launch, configure, image, clone)"
	@echo "make demo-clean    tear the flow down and stop the sandbox"
	@echo "make test          set up and run every check, in two lanes side by side:"
	@echo "                   check (no sandbox): $(CHECK_STEPS)"
	@echo "                   e2e (one sandbox session): $(E2E_STEPS)"
	@echo "make sandbox       start the local EC2 sandbox on 127.0.0.1:$(SANDBOX_PORT) (root)"
	@echo "make sandbox-down  stop it and remove every host, mount, namespace, route and rule it made"
	@echo "make venv          create the project virtualenv ($(VENV)) from requirements-dev.txt"
	@echo "make lint | sanity | unit | integration | test-app | test-browser | screenshots | test-sandbox | test-molecule | test-awx | test-aws"
	@echo "make docs          the collection's documentation site (antsibull-docs) in .build/docs/build/html"
	@echo "make test-reliability (bounded, in make test) | reliability (full counts: faults, crashes, bad input)"
	@echo "make build         the collection tarball in .build/dist;  make ee-context: execution environment context"
	@echo "make bench        benchmarks against amazon.aws (bench/RESULTS.md); make bench-smoke: a few minutes"

$(BIN)/.stamp: requirements-dev.txt requirements.txt
	$(call step,virtualenv $(VENV) from requirements-dev.txt)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The collections the flow uses (galaxy.yml dependencies), from the ansible package of requirements-collections.txt:
# its wheel from PyPI, of which only amazon.aws and community.aws are unpacked (no Galaxy needed).
DEP_COLLECTIONS := amazon/aws community/aws
DEP_STAMP := $(COLLECTIONS)/.deps-stamp

.PHONY: venv
venv: $(BIN)/.stamp $(COLL_LINK) $(DEP_STAMP)

$(DEP_STAMP): requirements-collections.txt $(BIN)/.stamp
	$(call step,collections $(DEP_COLLECTIONS) from the ansible package of requirements-collections.txt -> $(COLLECTIONS))
	@rm -rf $(COLLECTIONS)/.wheel && mkdir -p $(COLLECTIONS)/.wheel
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps -r requirements-collections.txt -d $(COLLECTIONS)/.wheel
	@cd $(COLLECTIONS) && rm -rf $(addprefix ansible_collections/,$(DEP_COLLECTIONS)) && \
	  $(BIN)/python -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
	    z.extractall(members=[n for n in z.namelist() if n.startswith(tuple("ansible_collections/%s/" % c for c in sys.argv[2:]))])' \
	  .wheel/ansible-*.whl $(DEP_COLLECTIONS)
	@rm -rf $(COLLECTIONS)/.wheel && touch $@

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

# The plugin and role docs (schema, markup, references) and docs/docsite, as docs.ansible.com would render them.
.PHONY: docs-lint
docs-lint: venv
	$(call step,antsibull-docs lint-collection-docs --plugin-docs)
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs .

.PHONY: lint
lint: ruff ansible-lint docs-lint

# The collection's documentation site, built by antsibull-docs and Sphinx as docs.ansible.com builds collection
# docs, offline (docs/offline_intersphinx.py), every Sphinx warning an error. Open .build/docs/build/html/index.html.
DOCS := $(CURDIR)/.build/docs
.PHONY: docs
docs: venv
	$(call step,antsibull-docs + Sphinx: the documentation site -> .build/docs/build/html (warnings fail))
	@rm -rf $(DOCS) && mkdir -p -m 700 $(DOCS)
	$(BIN)/antsibull-docs --config-file docs/docsite/antsibull-docs.cfg \
	  sphinx-init --use-current --fail-on-error --no-add-antsibull-docs-version \
	  --project bakery.ec2 --copyright "bakery.ec2 contributors" --title "bakery.ec2 documentation" \
	  --html-short-title bakery.ec2 --dest-dir $(DOCS) bakery.ec2 >/dev/null
	$(BIN)/python docs/offline_intersphinx.py $(DOCS)
	$(DOCS)/build.sh
	@! grep -rl 'example\.invalid' $(DOCS)/build/html || { echo "error: a link to example.invalid in the site" >&2; exit 1; }
	@echo "documentation: $(DOCS)/build/html/index.html"

.PHONY: sanity
sanity: venv
	$(call step,ansible-test sanity (python 3.11))
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_COLL)
	@# The collection's content: what ships (sandbox/ and bench/ are not part of it; ruff checks them).
	@git ls-files -z --cached --others --exclude-standard -- . ':!sandbox' ':!bench' ':!tests/sandbox' ':!tests/bench' \
	  | xargs -0 -I{} cp --parents -a {} $(SANITY_COLL)/
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
	$(BIN)/pytest -q -n 2 tests/integration

.PHONY: build
build: venv
	$(call step,ansible-galaxy collection build -> .build/dist)
	@mkdir -p .build/dist
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist .

.PHONY: ee-context
ee-context: build
	$(call step,ansible-builder create -> .build/ee/context (building the image needs podman or docker))
	$(BIN)/ansible-builder create -f execution-environment.yml -c .build/ee/context --output-filename Containerfile

# make test: two lanes side by side (tests/lanes.sh), each a make of its own, its lines prefixed [check] or [e2e]
# and kept in .build/test/<lane>.log; the time and result of each lane at the end.
#   check: lint, sanity, unit, integration, docs, app, browser, reliability on the API front, the benchmarks'
#          cases on moto, aws (no sandbox), run at a lower CPU priority so that the e2e lane's bounded waits keep
#          their margins on 2 cores;
#   e2e:   everything on the sandbox, in one sandbox session: first `make demo` (the README's first command: it
#          reuses a running sandbox and demo, or starts both), then every sandbox test beside the demo (each test
#          looks only at what it made), the benchmarks' cases on the sandbox, Molecule, AWX, reliability on the
#          sandbox; last, the test that stops the sandbox and finds
#          nothing left.
.PHONY: test
test: venv sandbox-deps browser-deps
	$(call step,make test: lanes check and e2e side by side (logs: .build/test/check.log and e2e.log))
	@tests/lanes.sh "$(MAKE)" check e2e

# The reliability API tests and the benchmarks' cases on moto need no sandbox: they run in the check lane.
CHECK_STEPS := lint sanity unit integration docs test-app test-browser test-reliability-api bench-smoke-moto test-aws
E2E_STEPS := e2e-demo test-sandbox-beside bench-smoke-sandbox test-molecule test-awx test-reliability-sandbox e2e-down

.PHONY: test-check test-e2e
test-check: $(CHECK_STEPS)
	@printf '\n==> lane check: every step passed\n'
test-e2e: $(E2E_STEPS)
	@printf '\n==> lane e2e: every step passed\n'

# --- benchmarks: the peer lives in its own virtualenv, used by nothing else ---
BENCH_VENV := $(CURDIR)/.venv-bench

$(BENCH_VENV)/bin/.stamp: bench/requirements.txt
	$(call step,benchmark virtualenv $(BENCH_VENV) from bench/requirements.txt)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

.PHONY: bench-inventory
bench-inventory: venv $(BENCH_VENV)/bin/.stamp
	$(call step,inventory benchmark only: bakery.ec2.instances vs aws_ec2 vs boto3 (printed; make bench writes bench/RESULTS.md))
	$(BIN)/python bench/inventory/run.py --runs 5

# Every case (inventory, ami_find, ec2_launch, ami_from_instance, the flow) against amazon.aws, and fleet scale
# (case 6: bake+clone against configure-each at N = 1 to 64, bench/scale.svg); about 40 minutes.
# Cases 3-6 run real hosts on the sandbox: a running one is reused, otherwise one is started and stopped here.
# One case, updating its section only: python bench/run.py --cases scale --replace-in bench/RESULTS.md
# 5 runs of each contender per case; the longest (the inventory at 10k where aws_ec2 takes ~80 s a run, ours alone
# at 100,000 instances in 16 regions, and the flow, ~50-80 s a run) get 3.
BENCH_RUNS ?= 5
BENCH_SLOW_RUNS ?= 3
.PHONY: bench
bench: venv sandbox-deps $(BENCH_VENV)/bin/.stamp
	$(call step,benchmarks: every case against amazon.aws (bench/RESULTS.md))
	$(BIN)/python bench/run.py --runs $(BENCH_RUNS) --flow-runs $(BENCH_SLOW_RUNS) --inventory-10k-runs $(BENCH_SLOW_RUNS) --output bench/RESULTS.md
	$(MAKE) --no-print-directory bench-fleet

# The sandbox's host capacity: BENCH_FLEET_HOSTS base-image hosts at once, more than root's default inotify limit
# fits (make test boots 4); figures appended to .build/sandbox/scale.json. 64 measures the sandbox's full capacity.
BENCH_FLEET_HOSTS ?= 24
.PHONY: bench-fleet
bench-fleet: venv sandbox-deps
	$(call step,fleet boot: $(BENCH_FLEET_HOSTS) hosts at once on the sandbox (tests/sandbox/test_fleet.py))
	SANDBOX_SCALE_HOSTS=$(BENCH_FLEET_HOSTS) $(BIN)/pytest -q -s -p no:cacheprovider tests/sandbox/test_fleet.py

# A quick mode of each case (a few minutes: the scale case bakes one host, clones 2 and configures one
# behind a load balancer), part of make test.
# Without .venv-bench (over a minute to build) the
# peer's side runs our modules as a stand-in, so that the harness's peer code paths still run.
# Bounded at 15 minutes: with the flow's default store (DynamoDB + S3) and HTTPS, the scale case alone bakes, clones
# and configures behind a load balancer for several minutes.
.PHONY: bench-smoke
bench-smoke: venv sandbox-deps
	$(call step,benchmark smoke run: a quick mode of every case)
	timeout 900 $(BIN)/python bench/run.py --smoke
# The smoke run in two parts: the cases on moto servers (no sandbox), the cases on the sandbox.
.PHONY: bench-smoke-moto bench-smoke-sandbox
bench-smoke-moto: venv
	$(call step,benchmark smoke run of the cases on moto (inventory, ami_find, ami_retire, app_store))
	timeout 600 $(BIN)/python bench/run.py --smoke --part moto
bench-smoke-sandbox: venv sandbox-deps
	$(call step,benchmark smoke run of the cases on the sandbox (launch, image, flow, scale, rollout))
	timeout 900 $(BIN)/python bench/run.py --smoke --part sandbox

.PHONY: clean
clean:
	rm -rf .build .pytest_cache .ruff_cache tests/output .venv-bench

# --- webserver ------------------------------------------------------------------------------------
# The employee-directory app of roles/webserver, tested on the controller through WSGI, on both stores: SQLite,
# and DynamoDB + S3 of a moto server on 127.0.0.1 (a random port; no sandbox needed).
.PHONY: test-app
test-app: venv
	$(call step,employee-directory app tests (pytest tests/app))
	PYTHONDONTWRITEBYTECODE=1 $(BIN)/pytest -q -p no:cacheprovider tests/app

# The app in a real browser: Debian's chromium driven by Playwright (pinned in requirements-dev.txt;
# it downloads nothing here), against gunicorn behind nginx with the role's own site configuration,
# both on 127.0.0.1. Screenshots and logs of a run: .build/browser/ (the checkout stays as it was);
# make screenshots takes them again into docs/screenshots/, which the README shows.
BROWSER_DEBS := chromium nginx libnss3-tools

.PHONY: browser-deps
browser-deps:
	@missing=""; for p in $(BROWSER_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "error: installing$$missing needs root: run 'sudo make browser-deps'" >&2; exit 1; }; \
	  printf '\n==> %s\n' "apt-get install$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

.PHONY: test-browser
test-browser: venv browser-deps
	$(call step,employee-directory app in Chromium at 390 and 1280 px (pytest tests/browser))
	PYTHONDONTWRITEBYTECODE=1 timeout 600 $(BIN)/pytest -q -p no:cacheprovider tests/browser

# The same run of test-browser, its screenshots written into docs/screenshots/.
.PHONY: screenshots
screenshots:
	BAKERY_SCREENSHOTS=$(CURDIR)/docs/screenshots $(MAKE) --no-print-directory test-browser
# --- end webserver --------------------------------------------------------------------------------

# --- real AWS ------------------------------------------------------------------------------------
# The flow scenario against a real account. Skipped, with a message, when no credentials are set.
.PHONY: test-aws
test-aws: venv
	$(call step,molecule aws scenario (real AWS account))
	@if [ -z "$${AWS_PROFILE:-}" ] && [ -z "$${AWS_ACCESS_KEY_ID:-}" ]; then \
	  echo "molecule aws: skipped: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"; \
	else \
	  env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_EC2 $(BIN)/molecule test -s aws; \
	fi

# ---------------------------------------------------------------------------- sandbox
# The local EC2 sandbox: moto's EC2 API on 127.0.0.1 with real hosts (netns + overlayfs +
# systemd-nspawn) behind it. Needs root. State: /var/lib/bakery-sandbox; base images cached in
# /var/cache/bakery-sandbox; the environment to source: .build/sandbox/env (the least-privilege IAM
# user whose only policy is docs/iam-policy.json); .build/sandbox/admin.env: the administrator, for tests
# and inspection only. Strict as EC2 by default: SANDBOX_EC_WINDOW (seconds, default 2; 0 = off, for the
# sandbox's own tests) and SANDBOX_EC_SEED (default 0) set the eventual-consistency windows;
# SANDBOX_ELB_PROVISIONING (seconds, default 5) how long a new load balancer is provisioning.
SANDBOX_PORT ?= 4700
SANDBOX_ENV := $(CURDIR)/.build/sandbox/env
SANDBOX_ADMIN_ENV := $(CURDIR)/.build/sandbox/admin.env
export SANDBOX_EC_WINDOW SANDBOX_EC_SEED SANDBOX_ELB_PROVISIONING
SANDBOX_DEBS := debootstrap iptables systemd-container iproute2 openssh-client curl haproxy
export SANDBOX_PORT

.PHONY: sandbox-deps
sandbox-deps:
	@[ "$$(id -u)" = 0 ] || { echo "error: the sandbox needs root: run 'sudo make sandbox'" >&2; exit 1; }
	@missing=""; for p in $(SANDBOX_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  printf '\n==> %s\n' "apt-get install$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

.PHONY: sandbox
sandbox: venv sandbox-deps
	$(call step,sandbox: start the local EC2 endpoint on 127.0.0.1:$(SANDBOX_PORT))
	$(BIN)/python -m sandbox up >/dev/null
	@echo "# least-privilege user (docs/iam-policy.json) written to $(SANDBOX_ENV): source it with  . $(SANDBOX_ENV)"
	@echo "# administrator (tests and inspection only) written to $(SANDBOX_ADMIN_ENV)"

.PHONY: sandbox-down
sandbox-down:
	$(call step,sandbox: stop it and remove every host; mount; namespace; route and rule it made)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m sandbox down; else python3 -m sandbox down; fi

SANDBOX_DOWN_TEST := tests/sandbox/test_sandbox.py::test_down_leaves_nothing

.PHONY: test-sandbox
test-sandbox: venv sandbox-deps browser-deps
	$(call step,sandbox tests (pytest tests/sandbox; as root; Chromium through the load balancer over HTTPS))
	$(BIN)/pytest -q -s -p no:cacheprovider tests/sandbox

# The e2e lane's steps: the demo first, the sandbox tests beside it, the down test last of all.
.PHONY: e2e-demo test-sandbox-beside e2e-down
e2e-demo:
	$(call step,make demo: the lane starts where a user who ran the README's first command is)
	$(MAKE) --no-print-directory demo
test-sandbox-beside: venv sandbox-deps browser-deps
	$(call step,sandbox tests beside the running demo (pytest tests/sandbox; the down test runs last in the lane))
	$(BIN)/pytest -q -s -p no:cacheprovider --durations=15 tests/sandbox --deselect $(SANDBOX_DOWN_TEST)
e2e-down: venv sandbox-deps
	$(call step,sandbox down: the lane's last step stops the sandbox (the demo with it) and checks nothing is left)
	SANDBOX_DOWN_FOR_GOOD=1 $(BIN)/pytest -q -s -p no:cacheprovider $(SANDBOX_DOWN_TEST)
# ---------------------------------------------------------------------------- end sandbox

# --- the flow on the sandbox -----------------------------------------------------------------------
FLOW_INVENTORY := playbooks/inventory/bakery.instances.yml

# The flow starts with no instance in its inventory: ansible-core's "provided hosts list is empty" is expected there.
.PHONY: demo
demo: sandbox
	$(call step,the whole flow on the sandbox: ansible-playbook -i $(FLOW_INVENTORY) playbooks/flow.yml)
	set -a && . $(SANDBOX_ENV) && set +a && \
	  ANSIBLE_LOCALHOST_WARNING=False $(BIN)/ansible-playbook -i $(FLOW_INVENTORY) playbooks/flow.yml

.PHONY: demo-clean
demo-clean: venv
	$(call step,teardown of the flow; then stop the sandbox)
	@if [ -f $(SANDBOX_ENV) ] && curl -fsS -o /dev/null "http://127.0.0.1:$(SANDBOX_PORT)/_sandbox/status"; then \
	  set -a && . $(SANDBOX_ENV) && set +a && \
	  $(BIN)/ansible-playbook -i $(FLOW_INVENTORY) playbooks/teardown.yml; \
	else echo "sandbox not running: nothing to tear down"; fi
	$(MAKE) --no-print-directory sandbox-down

# Molecule scenarios on the sandbox (started here when not running; stopped only if started here).
.PHONY: test-molecule
test-molecule: venv sandbox-deps
	$(call step,molecule scenarios webserver and flow on the sandbox)
	@started=0; \
	if ! curl -fsS -o /dev/null "http://127.0.0.1:$(SANDBOX_PORT)/_sandbox/status" 2>/dev/null; then \
	  $(BIN)/python -m sandbox up >/dev/null && started=1; fi; \
	mkdir -p $(dir $(SANDBOX_ENV)) && (umask 077 && $(BIN)/python -m sandbox env > $(SANDBOX_ENV)); \
	set -a && . $(SANDBOX_ENV) && set +a; rc=0; \
	$(BIN)/molecule test -s webserver || rc=$$?; \
	[ $$rc -ne 0 ] || $(BIN)/molecule test -s flow || rc=$$?; \
	if [ $$started = 1 ]; then $(BIN)/python -m sandbox down >/dev/null; fi; \
	exit $$rc

# --- AWX ----------------------------------------------------------------------------------------
# The flow as AWX runs it, with ansible-runner: each step a job in its own private data directory (credentials
# only in the job's environment, a fresh HOME, the Machine credential through ssh-agent, the inventory a synced
# snapshot), launch -> inventory update -> configure -> image -> clone, then configure of the clones as a sliced
# job (2 slices at once), then teardown; and bad survey answers. On the sandbox (started here unless running).
.PHONY: test-awx
test-awx: venv sandbox-deps
	$(call step,AWX run with ansible-runner: workflow of job templates and a sliced job on the sandbox; survey checks)
	timeout 1200 $(BIN)/pytest -q -s -p no:cacheprovider tests/awx

# --- reliability ------------------------------------------------------------------------------------
# Faults (throttling, 5xx, lost answers, latency) on the flow, crash and rerun, bad input, secrets and
# secure defaults: tests/reliability, docs/RELIABILITY.md. API-only tests run in parallel against the
# sandbox's API front without hosts; the sandbox tests run one at a time (started here unless running).
# Figures measured are appended to .build/reliability/figures.json.
RELIABILITY_API_TESTS := tests/reliability/test_faults.py tests/reliability/test_bad_input.py \
  tests/reliability/test_secrets.py tests/reliability/test_secure_defaults.py
RELIABILITY_SANDBOX_TESTS := tests/reliability/test_crash.py tests/reliability/test_flow_faults.py

.PHONY: test-reliability test-reliability-api test-reliability-sandbox
test-reliability: test-reliability-api test-reliability-sandbox
test-reliability-api: venv
	$(call step,reliability on the API front (bounded, no sandbox): injected faults; bad input; secrets; secure defaults)
	$(BIN)/pytest -q -p no:cacheprovider -n 4 $(RELIABILITY_API_TESTS)
test-reliability-sandbox: venv sandbox-deps
	$(call step,reliability on the sandbox (bounded): 1 faulted flow; 2+2 crashes and 1 right after RunInstances)
	RELIABILITY_SEEDS="1" RELIABILITY_CRASHES=2 $(BIN)/pytest -q -s -p no:cacheprovider $(RELIABILITY_SANDBOX_TESTS)

.PHONY: reliability
reliability: venv sandbox-deps
	$(call step,reliability (full counts): 5 faulted flows; 6+6 crashes; every bad input incl. slow ones)
	RELIABILITY_FULL=1 $(BIN)/pytest -q -p no:cacheprovider -n 4 $(RELIABILITY_API_TESTS)
	RELIABILITY_SEEDS="1 2 3 4 5" RELIABILITY_CRASHES=6 $(BIN)/pytest -q -s -p no:cacheprovider $(RELIABILITY_SANDBOX_TESTS)
	@echo "figures: .build/reliability/figures.json"
# --- end reliability ----------------------------------------------------------------------------------
