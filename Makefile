# Two commands for operators and CI: `make lab` and `make test`. Both install what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
# The test-host image is rebuilt only when its recipe changes.
BASE_IMAGE_HASH := $(shell sha256sum tests/harness/build-base-image.sh | cut -c1-12)
export ONPREM_LLM_TEST_IMAGE := localhost/onprem-llm-testhost:bookworm-$(BASE_IMAGE_HASH)
# Debian 13 hosts (Redis 8 for the semantic cache) in the serving scenario.
export ONPREM_LLM_TEST_IMAGE_TRIXIE := localhost/onprem-llm-testhost:trixie-$(BASE_IMAGE_HASH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export ANSIBLE_FORCE_COLOR := false
export ANSIBLE_NOCOLOR := 1
export NO_COLOR := 1
# `make molecule SCENARIOS=common` runs one scenario.
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: help deps image test lint argspecs syntax unit molecule vllm-assets gateway-wheel lab lab-hosts lab-status lab-down

help:
	@echo "make lab       bring up the local lab and deploy site.yml to it"
	@echo "make lab-down  remove the lab"
	@echo "make test      lint, argument specs, syntax, unit tests, molecule scenarios"
	@echo "make molecule SCENARIOS=common   one molecule scenario"

deps:
	@tests/harness/install-deps.sh

image: deps
	@tests/harness/build-base-image.sh $(ONPREM_LLM_TEST_IMAGE) bookworm
	@tests/harness/build-base-image.sh $(ONPREM_LLM_TEST_IMAGE_TRIXIE) trixie

test: deps
	@$(MAKE) --no-print-directory lint argspecs syntax unit molecule

lint:
	yamllint --strict .
	ruff check .
	ruff format --check .
	# Strict typing of the package and of the collection's shared code ([tool.mypy]).
	mypy -p onprem_llm -p ansible_collections.onprem.llm.plugins.module_utils
	antsibull-changelog lint
	# A private HOME: a copy of this collection installed under ~/.ansible would shadow the checkout.
	HOME=$(CURDIR)/.cache/lint-home ansible-lint --profile production
	# ansible-test sanity (tests/sanity/ignore-2.19.txt says why each ignored line is).
	tests/harness/sanity.sh

argspecs:
	python tests/harness/check_argument_specs.py roles

syntax:
	ansible-playbook --syntax-check -i inventories/prod site.yml
	ansible-playbook --syntax-check -i inventories/lab site.yml

# Most unit tests run ansible-playbook: one worker per core.
unit:
	python -m pytest tests/unit -q -n auto

# The vLLM CPU wheelhouse and the tiny model the serving scenario runs: built once, cached.
vllm-assets: deps
	@tests/harness/build-vllm-wheelhouse.sh
	@tests/harness/fetch-embedding-model.sh
	@if [[ ! -f .cache/tiny-model/config.json || tests/harness/make_tiny_model.py -nt .cache/tiny-model/config.json ]]; then \
	  .cache/vllm-build-venv/bin/python tests/harness/make_tiny_model.py; fi

# The onprem_llm wheel the gateway_service role installs on gateways (the cache service).
GATEWAY_WHEEL_DIR := .cache/dist
gateway-wheel: deps
	@if [[ -z "$$(find $(GATEWAY_WHEEL_DIR) -name 'onprem_llm-*.whl' -newer pyproject.toml -newer galaxy.yml 2>/dev/null)" \
	      || -n "$$(find src -name '*.py' -newer "$$(ls -t $(GATEWAY_WHEEL_DIR)/onprem_llm-*.whl | head -1)")" ]]; then \
	  rm -rf $(GATEWAY_WHEEL_DIR) && pip wheel --quiet --no-deps --wheel-dir $(GATEWAY_WHEEL_DIR) . ; fi

molecule: image vllm-assets gateway-wheel
	@tests/stand_ins/nvidia/build-stand-in-repo.sh
	@for scenario in $(SCENARIOS); do \
	  echo "== molecule scenario $$scenario"; \
	  molecule test -s $$scenario || exit 1; \
	done

lab: lab-hosts
	ansible-playbook -i inventories/lab site.yml
	ansible-playbook -i localhost, playbooks/lab_status.yml

# The lab's hosts started, nothing deployed (tests/bench/bench_lab.sh times site.yml apart).
lab-hosts: image vllm-assets gateway-wheel
	ansible-playbook -i localhost, playbooks/lab_up.yml

lab-status: deps
	ansible-playbook -i localhost, playbooks/lab_status.yml

lab-down: deps
	ansible-playbook -i localhost, playbooks/lab_down.yml
