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

.PHONY: all deps test-tools build release run test bench clean

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

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	mkdir -p $(DATA_DIR)
	.build/release/ternd --data-dir $(DATA_DIR) --http $(HTTP)

# TERN_BIN_DIR tells the integration tests where the built ternd and tern are.
test: deps test-tools
	$(SWIFT) build --build-tests
	TERN_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(SWIFT) test

bench:
	@echo "Benchmarks and how to run them: see docs/performance.md"

clean:
	$(SWIFT) package clean
