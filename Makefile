# Tern: build, run and test. `make run` starts a broker on 127.0.0.1:7080; `make test` runs every test.

SWIFT    ?= swift
DATA_DIR ?= ./data
HTTP     ?= 127.0.0.1:7080

# The loghub samples the integration tests replay, when this checkout sits next to them.
LOGHUB_DIR := $(abspath $(CURDIR)/../shared/data/loghub)
ifneq ($(wildcard $(LOGHUB_DIR)),)
export TERN_LOGHUB_DIR ?= $(LOGHUB_DIR)
endif

# apt-get needs root; use sudo only when not already root.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps test-tools sqs-venv build release run test bench clean

all: build

# System libraries behind the CLMDB and CSnappy targets.
deps:
	@if ! pkg-config --exists lmdb snappy 2>/dev/null; then \
		echo "installing liblmdb-dev libsnappy-dev pkg-config"; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y liblmdb-dev libsnappy-dev pkg-config; \
	fi

# Optional test tools: headless Chromium for the console test, openssl for the TLS test
# (their tests skip with a message when these are missing).
test-tools:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then \
		echo "installing chromium openssl (console and TLS tests)"; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium openssl \
		|| echo "chromium/openssl unavailable: the console and TLS tests will be skipped"; \
	fi

# Python environments of the SQS client tests (Tests/sqs, run by SQSClientTests): current boto3,
# awscli and moto; and boto3 1.26, whose botocore still speaks the Query protocol. Made from PyPI
# when missing or when the pinned versions change; a failure stops `make test` (no silent skip).
PYTHON             ?= python3
SQS_VENV           ?= $(CURDIR)/.venv/sqs
SQS_QUERY_VENV     ?= $(CURDIR)/.venv/sqs-query
SQS_PACKAGES       := boto3==1.44.8 awscli==1.46.3 moto[server]==5.2.5
SQS_QUERY_PACKAGES := boto3==1.26.165

define make_venv
	@set -ef; \
	if [ "$$(cat $(1)/.tern-packages 2>/dev/null)" != "$(2)" ]; then \
		echo "creating $(1) with $(2)"; \
		rm -rf $(1); \
		$(PYTHON) -m venv $(1) || { echo "error: cannot create a Python virtual environment (install python3-venv)" >&2; exit 1; }; \
		$(1)/bin/pip install --quiet --disable-pip-version-check $(2) || { echo "error: pip could not install $(2)" >&2; exit 1; }; \
		echo "$(2)" > $(1)/.tern-packages; \
	fi
endef

sqs-venv:
	$(call make_venv,$(SQS_VENV),$(SQS_PACKAGES))
	$(call make_venv,$(SQS_QUERY_VENV),$(SQS_QUERY_PACKAGES))

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	mkdir -p $(DATA_DIR)
	.build/release/ternd --data-dir $(DATA_DIR) --http $(HTTP)

# TERN_BIN_DIR tells the integration tests where the built ternd and tern are; TERN_SQS_VENV and
# TERN_SQS_QUERY_VENV where the SQS client tests find their Python.
test: deps test-tools sqs-venv
	$(SWIFT) build --build-tests
	TERN_BIN_DIR="$$($(SWIFT) build --show-bin-path)" TERN_SQS_VENV="$(SQS_VENV)" TERN_SQS_QUERY_VENV="$(SQS_QUERY_VENV)" \
		$(SWIFT) test

bench:
	@echo "Benchmarks and how to run them: see docs/performance.md"

clean:
	$(SWIFT) package clean
