# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the package with its test extras when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
DOCS_STAMP := $(VENV)/.docs-stamp
OUT    ?= report
JOBS   ?= 2
# laplace-torch (test extra) pulls torchvision, whose wheel does not match the CPU torch build
# and breaks `import laplace` through torchmetrics: every install step removes it again.
DROP_TORCHVISION := $(PY) -m pip uninstall --quiet --yes torchvision

.PHONY: demo lint test test-slow test-all bench device-check mutation clean docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(DROP_TORCHVISION)
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(DROP_TORCHVISION)
	touch $(BENCH_STAMP)

## The main job on bundled data: prints results, writes plots and metrics to $(OUT)/.
demo: $(STAMP)
	$(VENV)/bin/espresso-jax tour --quick --out $(OUT)

## Lint (ruff: style, import order, bug patterns) and type-check the library (mypy on src/;
## configuration in pyproject.toml). Seconds; `make test` runs it first. Both always run, so
## one log lists every finding.
lint: $(STAMP)
	status=0; \
	$(PY) -m ruff check src tests benchmarks examples || status=1; \
	$(PY) -m mypy || status=1; \
	exit $$status

## Lint, then the default test suite (slow tests excluded); this is what .ci/run calls.
## About 95 % of its CPU time is XLA compiling small programs (each test fits at its own
## shapes). Two compiler settings cut that compile time 2.7x over the suite, every test
## passing (benchmarks/RESULTS.md, "default suite"): LLVM optimisation level 0 (XLA's
## default is 2) and the legacy elemental fusion emitters (`xla_cpu_use_fusion_emitters`,
## jaxlib 0.10). Only here: programs compute the same values up to float32 rounding; the slow
## suite and everything else run XLA's defaults, where the NUTS R-hat bounds were measured.
## The two workers (and the tests' child processes) also share one persistent compilation
## cache, made empty for each run and removed after it: a program that several tests compile
## with the same shapes compiles once (~6 % less CPU; "Compiling ..." is still logged, so the
## raise-before-compiling checks keep their meaning).
TEST_XLA_FLAGS ?= --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false
test: lint
	@cache=$$(mktemp -d); status=0; \
	JAX_COMPILATION_CACHE_DIR=$$cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1 \
	XLA_FLAGS="$(strip $(XLA_FLAGS) $(TEST_XLA_FLAGS))" $(PY) -m pytest -n $(JOBS) -q || status=$$?; \
	rm -rf "$$cache"; exit $$status

## Slow reference checks only (NUTS cross-checks, large fits).
test-slow: $(DOCS_STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m slow

test-all: $(DOCS_STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m "slow or not slow"

## Benchmarks against the peers, one at a time (never run two at once).
bench: $(BENCH_STAMP)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

## Accelerator readiness in one command (issue 15): floors (GEMM, bandwidth), the GMM EM
## iteration and VAE step against them, peak memory, the peers' ratios and the accelerator
## test subset, on JAX's default device; writes device_check/device_check.{json,md}.
device-check: $(BENCH_STAMP)
	$(PY) benchmarks/device_check.py --out device_check

## Mutation score of bnn/, nn/vae*, train.py and em.py (issue 12; tools/mutation.py). Not run
## by CI: about an hour of one CPU. Resumable: mutants already in the results file are skipped.
mutation: $(STAMP)
	$(PY) -m pip install --quiet coverage
	PYTHONPATH=src $(PY) tools/mutation.py map --out .mutation/map.json
	PYTHONPATH=src $(PY) tools/mutation.py run --map .mutation/map.json --per-module 25 --seed 12
	$(PY) tools/mutation.py summary

## The documentation (docs/README.md): installs the docs extra once, then builds the HTML into
## docs/_build/html/ offline, warnings as errors; the example scripts run during the build.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,docs]"
	$(DROP_TORCHVISION)
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html

clean:
	rm -rf $(VENV) $(OUT) docs/_build docs/_gallery_src docs/examples docs/_tour .pytest_cache .ruff_cache .mypy_cache build src/*.egg-info

## The sdist and the wheel in dist/ (`python -m build`, isolated: setuptools from the package
## index; `build` comes with the test extra). Install with `pip install dist/espresso_jax-*.whl`.
.PHONY: wheel
wheel: $(STAMP)
	rm -f dist/espresso_jax-*
	$(PY) -m build --outdir dist .

## The UCI uncertainty leaderboard (issue 16): every registered method on the five small sets,
## scored against the NUTS BNN predictive (cached in nuts_cache/); writes leaderboard/
## leaderboard.{md,json,png}. LEADERBOARD_ARGS passes options, e.g. "--splits 2" or "--quick".
.PHONY: leaderboard
leaderboard: $(STAMP)
	$(VENV)/bin/espresso-jax leaderboard --out leaderboard $(LEADERBOARD_ARGS)
