# Tandem: `make run` and `make test` are all a new user needs.
CARGO ?= cargo
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := upgrade_request decode_owp decode_v1 conn_bytes core_ops tokens

.PHONY: run build release static test-static test-proxy e2e bench-sync cross test lint fmt bench fuzz fuzz-smoke conformance clean

run:
	$(CARGO) run --release --bin tandem

build:
	$(CARGO) build --release

# A fully static x86_64 Linux binary (glibc, +crt-static, stable toolchain), profile `min`:
# opt-level s, fat LTO, one codegen unit, panic = abort (a panic ends the process: the
# service manager restarts it), stripped. Printed path: target/x86_64-unknown-linux-gnu/min/tandem
STATIC_BIN := target/x86_64-unknown-linux-gnu/min/tandem
# getrandom is told to call the getrandom(2) system call itself: a static glibc binary
# cannot find glibc's wrapper and would otherwise need /dev/urandom (absent in a bare root).
static:
	RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
	  $(CARGO) build --profile min --bin tandem --target x86_64-unknown-linux-gnu
	@ls -l $(STATIC_BIN)

# The static binary is static and serves a WebSocket session from an empty directory with an
# empty environment.
test-static: static
	bash tests/static/run.sh $(STATIC_BIN)

# nginx with TLS in front of a release build: a wss:// session through it, /health, and
# X-Forwarded-For attribution (docs/deploy.md). Installs nginx with apt-get if missing.
test-proxy:
	$(CARGO) build --release --bin tandem
	bash tests/proxy/run.sh

# The party page in real Chromium (headless, playwright-core) against a release Tandem: two
# pages play a generated clip in step; pause, seek, drift correction, a mid-play join, a full
# room, a private room, a reload, host handover and a restart. Installs chromium, ffmpeg and
# playwright-core when missing. Screenshots and the figures: target/e2e/.
e2e:
	bash tests/e2e/run.sh

# The sync error of two Chromium pages playing together, measured over E2E_SYNC_SECONDS (60).
E2E_SYNC_SECONDS ?= 60
bench-sync:
	E2E_SYNC_SECONDS=$(E2E_SYNC_SECONDS) bash tests/e2e/run.sh --bench

# Cross-build a static release binary for another machine (docs/install.md):
#   make cross TARGET=aarch64-unknown-linux-musl LINKER=rust-lld
# Needs `rustup target add $(TARGET)`. LINKER names the target's linker (rust-lld for the
# -musl targets, aarch64-linux-gnu-gcc and the like for -gnu); without it Cargo's own choice
# applies (target.<triple>.linker, CARGO_TARGET_<TRIPLE>_LINKER, else cc).
cross:
	@test -n "$(TARGET)" || { echo "usage: make cross TARGET=<target triple> [LINKER=<linker>]" >&2; exit 2; }
	RUSTFLAGS='-C target-feature=+crt-static$(if $(findstring -gnu,$(TARGET)), --cfg getrandom_backend="linux_getrandom")' \
	  $(CARGO) build --release --locked --bin tandem --target $(TARGET)$(if $(LINKER), --config 'target.$(TARGET).linker="$(LINKER)"')
	@echo "cross: $${CARGO_TARGET_DIR:-target}/$(TARGET)/release/tandem"

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	bash benches/bench.sh

conformance:
	bash conformance/run.sh

# Each target for FUZZ_SECONDS on the stable toolchain (-s none: no sanitizer). New inputs go
# to a scratch corpus under fuzz/target (git-ignored); the checked-in fuzz/corpus/<target>
# seeds it and is only read. A crash fails the run and leaves its input in fuzz/artifacts.
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  mkdir -p target/corpus/$$target && \
	  $(CARGO) fuzz run -s none $$target target/corpus/$$target corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=4096 || exit 1; \
	done

# The checked-in corpora through the same properties, on stable, without libFuzzer.
fuzz-smoke:
	$(CARGO) test --test fuzz_corpus

clean:
	$(CARGO) clean
