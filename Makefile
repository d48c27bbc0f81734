# The README's commands. Each target installs what it needs (Debian packages) first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: deps configure build test demo bench clean

deps:
	@.ci/install-deps

configure: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS); fi

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# The offline mode on the shipped example: a local storage goes Ready and metadata.yaml appears.
demo: build
	@mkdir -p var/demo/volumes
	@echo
	@echo "== stowage demo: watching examples/local; state in var/demo, volumes under var/demo/volumes"
	@echo "== metadata.yaml will appear at var/demo/volumes/data/stowage-demo/metadata.yaml"
	@echo "== in another terminal: build/stowage get bs -A --state-dir var/demo"
	@echo "== edit or add manifests in examples/local to see them reconciled; Ctrl-C to stop"
	@echo
	$(BUILD)/stowage run --manifests examples/local --state-dir var/demo --local-root var/demo/volumes

bench: build
	$(BUILD)/bench/stowage-bench
	$(BUILD)/bench/stowage-cloud-bench
	$(BUILD)/bench/stowage-watch-bench
	$(BUILD)/bench/stowage-kube-bench

clean:
	rm -rf $(BUILD)
