# The two commands of the README: `make lab` runs the product, `make test` runs the tests.
# Both create .venv on first use and install the package with everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-oldest lab lint bench compare clean

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
	$(MAKE) test-oldest

# The state and engine tests again with the oldest pandas and numpy the package accepts
# (pandas>=2.2, numpy>=1.26: what most notebooks in the wild were written for), in a venv of
# their own: serializers, reductions and capture, the timeline (the value zoo, every workload
# commit by commit, undo/redo/restore, rebuilds; not the fork mechanics of test_background*,
# which pandas does not touch), and the numpy/pandas zoo and library coverage batch through
# real kernels. Only what those tests import is installed (pyarrow 26 needs numpy 2; torch
# is left out with tests/state/test_libraries.py), and the package without its labextension
# build. Measured on the 2-core VM: ~35 s to install (warm pip cache), ~70 s to run.
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.installed
OLDEST_PINS := "numpy==1.26.*" "pandas==2.2.*" "pyarrow>=15,<26" "scipy>=1.11" "polars>=1.20" \
	"scikit-learn>=1.4" "matplotlib>=3.8" "ipywidgets>=8.1" "pytest>=8" "hypothesis>=6.100" \
	"jsonschema>=4.18" "psutil>=5.9"
OLDEST_TESTS := tests/state --ignore=tests/state/test_libraries.py tests/timeline \
	--ignore=tests/timeline/test_background.py --ignore=tests/timeline/test_background_crash.py \
	tests/kernel/test_zoo.py \
	"tests/coverage/test_coverage.py::test_batch_is_exact_under_undo_redo_and_restart_or_refused_at_checkpoint[numpy, pandas, pyarrow, polars]"

$(OLDEST_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet --upgrade pip
	HATCH_BUILD_NO_HOOKS=true $(OLDEST_PY) -m pip install --quiet -e . $(OLDEST_PINS)
	$(OLDEST_PY) -c "import numpy, pandas; assert numpy.__version__.startswith('1.26.') and pandas.__version__.startswith('2.2.'), (numpy.__version__, pandas.__version__)"
	touch $(OLDEST_STAMP)

test-oldest: $(OLDEST_STAMP)
	$(OLDEST_PY) -m pytest $(OLDEST_TESTS)

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
	rm -rf $(VENV) $(OLDEST_VENV) build dist *.egg-info
