# The two commands of the README: `make run` and `make test`. Each installs what is missing first.
BUILD     ?= build
PORT      ?= 8080
HOST      ?= 127.0.0.1
CONFIG    ?= config/sluice.yaml
BUILD_TYPE ?= RelWithDebInfo
CMAKE_ARGS ?=
CTEST_ARGS ?=

.PHONY: all setup model configure build run test test-unit clean check-config

all: build

setup:
	bash scripts/setup.sh

model: setup
	bash scripts/fetch_model.sh

configure: setup
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) --parallel

run: build model
	$(BUILD)/bin/sluice serve --config $(CONFIG) --host $(HOST) --port $(PORT)

check-config: build
	$(BUILD)/bin/sluice check-config --config $(CONFIG)

test: build model
	ctest --test-dir $(BUILD) --output-on-failure --timeout 900 $(CTEST_ARGS)

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure -L unit $(CTEST_ARGS)

clean:
	rm -rf $(BUILD)
