# Hangar: `make serve` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
REPO ?= model_repo
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
# torch is pinned to the CPU build on this machine's disk: a bare `torch` pulls several GB of CUDA.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv install install-test demo serve test lint bench protos clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[test]'
	@# Prometheus (promtool + server) for the scrape and rule tests; skipped where apt is not ours.
	@command -v prometheus >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) || \
	  echo "prometheus not installed: its tests will skip"; }
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	@if [ ! -d "$(REPO)/demo_llm/1" ]; then $(PY) -m server build demo --repository $(REPO); fi
	@if ! ls $(REPO)/add_sub_onnx/1/model.onnx >/dev/null 2>&1; then $(PY) -m builders.onnx_example --repository $(REPO); fi

serve: demo
	$(PY) -m server serve --model-repository $(REPO) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

lint: install-test
	$(VENV)/bin/ruff check server builders tests bench
	$(VENV)/bin/mypy
	$(PY) ../shared/checks/architecture.py || [ ! -f ../shared/checks/architecture.py ]

# pytest exits 5 when it collects nothing: treat that as a failure, never as green.
test: install-test lint
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: install-test
	$(PY) bench/grpc_overhead.py
	$(PY) bench/engine_throughput.py

protos: install
	$(PY) -m server.protocol.codegen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
