# swarm-rs: see README.md. `make up` and `make test` are the two entry points.

CARGO ?= cargo
UP_DIR ?= $(CURDIR)/.swarm-up
UP_ADDR ?= 127.0.0.1:2377

.PHONY: build up down clean-up test test-image lint fix verify bench bench-peer bench-sched fuzz chaos

build:
	$(CARGO) build --release --workspace

## Start a one-node cluster from this checkout and show what runs on it.
up: build test-image
	UP_DIR=$(UP_DIR) UP_ADDR=$(UP_ADDR) scripts/up.sh

## Stop the `make up` cluster (its state stays in .swarm-up/).
down:
	UP_DIR=$(UP_DIR) scripts/down.sh

## Stop it and delete its state.
clean-up: down
	umount -l $(UP_DIR)/node/task-files 2>/dev/null || true
	rm -rf $(UP_DIR)

## All tests: unit, property, in-process raft, and end-to-end with real processes.
test: test-image
	$(CARGO) test --profile e2e --workspace -- --test-threads=1

## The fault suite at length (docs/reliability.md): SCHEDULES seeded schedules of
## CHAOS_WINDOW_SECS of faults each (`make test` runs 10 of 10 s). SEED=N replays one schedule.
SCHEDULES ?= 100
CHAOS_WINDOW_SECS ?= 15
chaos: test-image
	SCHEDULES=$(SCHEDULES) CHAOS_WINDOW_SECS=$(CHAOS_WINDOW_SECS) $(CARGO) test --profile e2e --test e2e -- \
	  --ignored --nocapture --test-threads=1 chaos::chaos_schedules

## The local test image (no registry): swarm-test/busybox:latest from Debian's busybox-static.
test-image:
	scripts/test-image.sh

## Read-only style checks.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --workspace -- -D warnings
	$(CARGO) clippy --all-targets --workspace --all-features -- -D warnings

## Rewrite files: formatting and clippy's automatic fixes.
fix:
	$(CARGO) fmt --all
	$(CARGO) clippy --fix --allow-dirty --all-targets --workspace

verify: lint test

## Benchmarks: medians, min and max over repeated runs. Prints each figure and rewrites the
## generated part of docs/benchmarks.md (machine, commit, date). Not part of `make test`.
BENCH_E2E = $(CARGO) test --release --test e2e -- --ignored --nocapture --test-threads=1
bench: test-image
	$(BENCH_E2E) bench_ --skip bench_peer
	$(CARGO) test --release -p swarm-agent --lib -- --ignored --nocapture --test-threads=1 bench_
	$(CARGO) test --release -p swarm-raft --lib -- --ignored --nocapture --test-threads=1 bench_
	$(BENCH_E2E) --exact bench::report::render_report

## swarm-rs beside Docker Swarm (the engine's own swarm mode) on the same engine, in one run.
bench-peer: test-image
	$(BENCH_E2E) --exact bench::peer::bench_peer_against_docker_swarm
	$(BENCH_E2E) --exact bench::report::render_report

## Scheduler benchmark: 100,000 tasks on 1,000 nodes through the real scheduler and store.
bench-sched:
	$(CARGO) test --release -p swarm-manager --lib -- --ignored --nocapture --test-threads=1 bench_sched

## Fuzz what swarm-rs reads from outside (fuzz/): FUZZ_SECONDS per target (default 10 min),
## FUZZ_JOBS targets at once. Needs the nightly toolchain; installs cargo-fuzz if missing.
## A crash is left in fuzz/artifacts/TARGET/ and stops the run.
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 1
FUZZ_TARGETS ?= compose_load api_request node_messages certificates
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build -O
	cd fuzz && printf '%s\n' $(FUZZ_TARGETS) | xargs -P $(FUZZ_JOBS) -I{} bash -c 'set -o pipefail; \
	  mkdir -p corpus/{}; cp -rn seeds/{}/. corpus/{}/ 2>/dev/null; \
	  $(CARGO) +nightly fuzz run -O {} corpus/{} -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 2>&1 \
	  | tail -n 5 | sed "s/^/{}: /"'
