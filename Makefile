# The two commands of the README: `make lab` runs the product, `make test` runs the tests.
# Both create .venv on first use and install the package with everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lab lint bench compare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@command -v node >/dev/null || { echo "Node.js (>= 20) is needed to build the JupyterLab extension: apt-get install nodejs"; exit 1; }
	$(PY) -m pip install --quiet -e ".[test,coverage]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check timetravel_kernel tests benchmarks

test: $(STAMP) lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.state_engine
	$(PY) -m benchmarks.kernel_latency
	$(PY) -m benchmarks.value_diff
	$(PY) -m benchmarks.background

# Side by side with Kishu 0.3.4 (built once in its own venv under ~/.cache) and dill; writes
# benchmarks/results/compare.{md,png,json}. About 10 minutes; COMPARE_FLAGS=--quick for 2.
compare: $(STAMP)
	$(PY) -m benchmarks.compare $(COMPARE_FLAGS)

# JupyterLab on examples/ with the time-travel kernel as the default for new notebooks. On a
# machine without a display it opens no browser and prints the URL (with its token) to open.
LAB_PORT ?= 8888
LAB_IP ?= 127.0.0.1
lab: $(STAMP)
	@FLAGS=; if [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo "No display here: open the http://$(LAB_IP):$(LAB_PORT)/lab?token=... URL printed below."; \
	  FLAGS=--no-browser; fi; \
	if [ "$$(id -u)" = 0 ]; then FLAGS="$$FLAGS --allow-root"; fi; \
	$(VENV)/bin/jupyter lab $$FLAGS --ip=$(LAB_IP) --port=$(LAB_PORT) \
	  --ServerApp.root_dir=examples \
	  --MappingKernelManager.default_kernel_name=timetravel

clean:
	rm -rf $(VENV) build dist *.egg-info
