# press_cell: `make demo` runs a simulated cell end to end, `make test` runs the tests.
# Both set everything up on first use (venv, ROS 2 wheels, interface build) and are safe to rerun.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := $(VENV)/.stamps
BUILD := build/interfaces
SITE := $(VENV)/lib/python3.11/site-packages
INTERFACE_FILES := $(wildcard msg/*.msg action/*.action srv/*.srv)

# ROS environment for everything make runs: the venv is the ROS prefix; DDS stays on this host.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export CMAKE_PREFIX_PATH := $(abspath $(VENV))
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup interfaces demo test lint bench soak doctor clean

setup: $(STAMPS)/editable

$(STAMPS)/venv:
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(STAMPS)
	touch $@

$(STAMPS)/requirements: $(STAMPS)/venv requirements/ros.txt requirements/python.txt requirements/test.txt
	$(PIP) install -q -r requirements/ros.txt -r requirements/python.txt -r requirements/test.txt
	touch $@

# Build the ROS interfaces with rosidl into the venv, then put the generated Python modules
# beside the sources (git-ignored) so one `press_cell` package holds both.
$(STAMPS)/interfaces: $(STAMPS)/requirements CMakeLists.txt package.xml $(INTERFACE_FILES)
	mkdir -p $(BUILD)
	cd $(BUILD) && cmake $(CURDIR) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	  -DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF \
	  -DPRESS_CELL_INSTALL_PYTHON_SOURCES=OFF > cmake.log || { cat cmake.log; exit 1; }
	$(MAKE) -C $(BUILD) -j2 install > $(BUILD)/build.log || { tail -40 $(BUILD)/build.log; exit 1; }
	rm -rf press_cell/msg press_cell/action press_cell/srv press_cell/*.so
	cp -r $(SITE)/press_cell/msg $(SITE)/press_cell/action $(SITE)/press_cell/srv press_cell/
	cp $(SITE)/press_cell/*.so press_cell/
	rm -rf $(SITE)/press_cell
	touch $@

interfaces: $(STAMPS)/interfaces

$(STAMPS)/editable: $(STAMPS)/interfaces setup.py entry_points.txt
	$(PIP) install -q --no-deps -e .
	touch $@

demo: setup
	$(VENV)/bin/press-cell demo

test: setup
	bash test/run_tests.sh

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/run_all.py

soak: setup
	$(PY) bench/soak.py --cells 200 --out out/soak/soak.json

doctor: setup
	$(VENV)/bin/press-cell doctor

clean:
	rm -rf build install log press_cell/msg press_cell/action press_cell/srv press_cell/*.so
	rm -rf $(STAMPS)/interfaces $(STAMPS)/editable
