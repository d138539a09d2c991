# fusebox: every target installs what is missing, configures and builds, so each works alone
# on a fresh Debian 12 machine (as root, or with sudo).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
# ccache: share hits between clones in different folders (CI builds a fresh clone each time).
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true

.PHONY: all deps build test test-unit test-integration test-asan check-deploy demo bench bench-smoke clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

test: build
	@ctest --preset release -j $(JOBS)
	@scripts/check-deploy.sh

# Offline checks of docker/ and deploy/ (promtool rules and tests, nginx -t, fusebox validate,
# metric names against a live fusebox); part of `make test`.
check-deploy: build
	@scripts/check-deploy.sh

test-unit: build
	@ctest --preset release -j $(JOBS) -L unit

test-integration: build
	@ctest --preset release -j $(JOBS) -L integration

# The unit and integration suites under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS)

demo: build
	@scripts/demo.sh

bench: build
	@scripts/install-deps.sh --bench
	@bench/run.sh

bench-smoke: build
	@scripts/install-deps.sh --bench
	@bench/run.sh --smoke

clean:
	rm -rf build
