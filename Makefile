# Tandem: `make run` and `make test` are all a new user needs.
CARGO ?= cargo
FUZZ_SECONDS ?= 60

.PHONY: run build release test lint fmt bench fuzz fuzz-smoke conformance clean

run:
	$(CARGO) run --release --bin tandem

build:
	$(CARGO) build --release

test:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	bash benches/bench.sh

conformance:
	bash conformance/run.sh

clean:
	$(CARGO) clean
