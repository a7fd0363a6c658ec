# One cargo target directory for every clone on this machine, so a fresh clone (and CI)
# reuses the RocksDB build instead of compiling it again.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/acre/target
CARGO ?= cargo

.PHONY: test deps lint bench

## Runs the whole suite: formatting, lints, unit, property, crash and doc tests.
test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked

## Installs the system packages the build needs (libclang, g++), if missing.
deps:
	@./scripts/install-deps.sh

## Prints the ledger's throughput beside the ed25519 limits measured in the same run.
bench: deps
	$(CARGO) run --release --locked -p acre-benches --bin ledger-bench
