# One cargo target directory for every clone on this machine, so a fresh clone (and CI)
# reuses the RocksDB build instead of compiling it again.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/acre/target
CARGO ?= cargo

.PHONY: test deps lint bench devnet openapi build

## Runs the whole suite: formatting, lints, unit, property, crash and doc tests.
test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked

## Installs the system packages the build needs (libclang, g++), if missing.
deps:
	@./scripts/install-deps.sh

## Builds every binary (and the tests, with the same features, so the build is shared).
build: deps
	$(CARGO) build --workspace --all-targets --locked

## Starts a local network of 7 elder processes; Ctrl-C stops it, running it again resumes it.
devnet: build
	$(CARGO_TARGET_DIR)/debug/acre-node devnet $(DEVNET_ARGS)

## Rewrites specs/openapi.json from the API's code.
openapi: deps
	ACRE_WRITE_OPENAPI=1 $(CARGO) test --workspace --locked --test openapi

## Prints the ledger's, an elder process's, the proofs', a devnet's, the section log's,
## confidential transfers' and the simulator's figures beside limits measured in the same run.
bench: deps
	$(CARGO) build --release --locked --workspace --bins
	$(CARGO_TARGET_DIR)/release/ledger-bench
	$(CARGO_TARGET_DIR)/release/elder-bench
	$(CARGO_TARGET_DIR)/release/proofs-bench
	$(CARGO_TARGET_DIR)/release/audit-bench
	$(CARGO_TARGET_DIR)/release/transfer-bench
	$(CARGO_TARGET_DIR)/release/farming-bench
	$(CARGO_TARGET_DIR)/release/confidential-bench
	$(CARGO_TARGET_DIR)/release/sim-bench
