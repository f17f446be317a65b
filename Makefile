# The two commands a newcomer needs: `make demo` and `make test`.
.PHONY: demo demo-down test lint fmt crds testenv-up testenv-down

demo:
	scripts/demo

demo-down:
	scripts/demo down

# Unit, contract and end-to-end tests. The end-to-end tests start (or reuse) the test environment.
test:
	scripts/build-k8s >/dev/null
	scripts/build-helm >/dev/null
	cargo test --workspace --no-fail-fast

# Formatting, lints, and cargo-deny (licences, duplicate and banned crates, sources; deny.toml).
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/deny

fmt:
	cargo fmt --all

# Regenerate the committed CRD YAML from the Rust types.
crds:
	cargo run -q -p kestra-operator -- crds > deploy/crds/kestra-operator.crds.yaml
	cp deploy/crds/kestra-operator.crds.yaml charts/kestra-operator/crds/kestra-operator.crds.yaml

testenv-up:
	scripts/testenv up

testenv-down:
	scripts/testenv down

# Benchmarks (not part of `make test`): scale, speed and cost against the Kestra API double, with a
# direct-API baseline; writes target/bench/runs/ and BENCHMARKS.md. BENCH_ARGS selects a part,
# e.g. `make bench BENCH_ARGS="run --scenarios cold --cold-n 1000"`.
.PHONY: bench
bench:
	KESTRA_BENCH_COMMAND='make bench$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")' scripts/bench $(BENCH_ARGS)

# The fault suite: FAULTS_N resources (default 1000) through Kestra, apiserver, etcd and operator
# failures; renders the figures into docs/reliability.md. Its short cases run in `make test`.
.PHONY: faults
faults:
	scripts/faults

# Fuzz the parsers of untrusted text (cargo-fuzz, nightly); seconds per target as FUZZ_SECONDS.
fuzz:
	scripts/fuzz $${FUZZ_SECONDS:-60}
