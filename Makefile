# The README's commands. Each target installs what it needs (Debian packages) first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SEED ?=

.PHONY: deps deps-build configure build test test-asan fuzz demo bench image test-image clean

# Everything the tests, fuzzing and the image need (test servers included).
deps:
	@.ci/install-deps

# Only what configuring and compiling needs (make demo, make build).
deps-build:
	@.ci/install-deps build

configure: deps-build
	@if [ ! -f $(BUILD)/build.ninja ]; then cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS); fi

# Every target: the stowage binary, the tests and the benches.
build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# Every test again, built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) in $(ASAN_BUILD).
# tests/sanitizers/run-ctest makes any report, in a test or in a process it starts, fail the run.
test-asan: deps
	@if [ ! -f $(ASAN_BUILD)/build.ninja ]; then cmake -S . -B $(ASAN_BUILD) -G Ninja $(CMAKE_FLAGS) -DSTOWAGE_SANITIZE=ON; fi
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	tests/sanitizers/run-ctest $(ASAN_BUILD) --output-on-failure -j $(JOBS) --timeout 1800

# Each libFuzzer target (fuzz/) for FUZZ_SECONDS, built with clang, ASan and UBSan in $(FUZZ_BUILD).
fuzz: deps
	@if [ ! -f $(FUZZ_BUILD)/build.ninja ]; then cmake -S . -B $(FUZZ_BUILD) -G Ninja $(CMAKE_FLAGS) -DCMAKE_CXX_COMPILER=clang++ -DSTOWAGE_FUZZ=ON; fi
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target stowage_fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(FUZZ_SEED) fuzz/run.sh $(FUZZ_BUILD)

# stowage's OCI image, from Debian's packages, without a registry (image/build says what it holds):
# $(BUILD)/image/stowage-<version>.tar (docker-archive, stowage:<version>) and $(BUILD)/image/oci.
image: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target stowage
	image/build $(BUILD)

# The image run as a cluster runs it (tests/image/test-image); `make test` runs it too (ctest "image: ...").
test-image: image
	tests/image/test-image $(BUILD)

# The offline mode on the shipped example: a local storage goes Ready and metadata.yaml appears.
# Builds the stowage binary only (about half of the build; `make test` builds the rest).
demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target stowage
	@mkdir -p var/demo/volumes
	@echo
	@echo "== stowage demo: watching examples/local; state in var/demo, volumes under var/demo/volumes"
	@echo "== metadata.yaml will appear at var/demo/volumes/data/stowage-demo/metadata.yaml"
	@echo "== in another terminal: build/stowage get bs -A --state-dir var/demo"
	@echo "== edit or add manifests in examples/local to see them reconciled; Ctrl-C to stop"
	@echo
	$(BUILD)/stowage run --manifests examples/local --state-dir var/demo --local-root var/demo/volumes

bench: deps build
	$(BUILD)/bench/stowage-bench
	$(BUILD)/bench/stowage-cloud-bench
	$(BUILD)/bench/stowage-watch-bench
	$(BUILD)/bench/stowage-kube-bench

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
