# akv-exporter: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml simulator/pyproject.toml | cksum | cut -d' ' -f1)
# Debian packages the test suite drives for real: Prometheus + promtool, Alertmanager + amtool, Chromium;
# Docker's engine and debootstrap (the image test builds and runs the Dockerfile, on a stand-in base
# made from Debian's packages when no registry answers); systemd-analyze (the unit's verify and score)
# and ip (the systemd test runs the service in a network namespace of its own).
DEBS   := prometheus prometheus-alertmanager chromium docker.io debootstrap systemd iproute2
BINS   := prometheus promtool prometheus-alertmanager amtool chromium dockerd debootstrap systemd-analyze ip

.PHONY: demo docs-test test check image-test lint format bench soak dashboards kubernetes rules screenshot system-deps clean generated

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml simulator/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./simulator
	touch $@

# The venv holds akv-exporter with its test extra and the simulator (simulator/), which `demo` needs.
# DEMO_FLAGS go to `akv-exporter demo` (make demo DEMO_FLAGS='--clusters 100').
demo: $(STAMP)
	$(BIN)/akv-exporter demo $(DEMO_FLAGS)

# Every shell block of README.md and docs/*.md, run as written (tests/test_docs.py; make test runs it too).
docs-test: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_docs.py

system-deps:
	@missing=""; for b in $(BINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null; \
	fi

# Tests run on WORKERS processes (pytest-xdist); docs/development.md has the marks and groups.
# Three on the 2-core machine: the suite mostly waits on real Prometheus, Alertmanager, Chromium
# and Docker (load average about 1.2 with two workers), so a third worker fills the wait.
WORKERS ?= 3
# pytest's exit status 5 says no test was selected (PYTEST_ADDOPTS naming only soak tests, say):
# nothing failed, so neither target fails on it (.ci/run runs make test).
NONE_SELECTED_IS_FINE := || [ $$? -eq 5 ]
# Every test but the soak (`make soak`; CI runs it after `make test`).
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not soak" $(NONE_SELECTED_IS_FINE)

# The everyday loop, under a minute: what needs no Prometheus, browser, Docker, large fleet or soak.
check: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not (prometheus or browser or docker or slow or soak)" $(NONE_SELECTED_IS_FINE)

# The container image built and run (make test runs it too): docs/docker.md.
image-test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q tests/test_image.py

lint: $(STAMP)
	$(BIN)/ruff check akv_exporter simulator/ontap_simulator tests bench dashboards deploy docs/generate.py
	$(BIN)/ruff format --check akv_exporter simulator/ontap_simulator tests bench dashboards deploy docs/generate.py

format: $(STAMP)
	$(BIN)/ruff format akv_exporter simulator/ontap_simulator tests bench dashboards deploy docs/generate.py
	$(BIN)/ruff check --fix akv_exporter simulator/ontap_simulator tests bench dashboards deploy docs/generate.py

bench: $(STAMP)
	$(BIN)/python -m bench

# 1,000 simulated clusters under load for SOAK_MINUTES; fails on growth or a late poll.
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

screenshot: $(STAMP) system-deps
	AKV_UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/test_status_page_simulated.py

# The rule files from config/prometheus/rules/: alerts.yml, alerts-fast.yml (its waits
# shortened), the Kubernetes PrometheusRule, docs/runbooks-key-managers.md and the runbook page
# the exporter serves (from docs/runbooks.md: run this after editing it). RUNBOOK_BASE=https://...
# sets the base of every runbook_url first (docs/alerting.md). `make generated` runs it too.
rules: $(STAMP)
	$(BIN)/python config/prometheus/generate.py $(if $(RUNBOOK_BASE),--runbook-base '$(RUNBOOK_BASE)')

# The reference pages derived from the code: docs/metrics.md (the metric catalogue) and
# docs/status.schema.json (the status document's model). A test fails while one is stale.
generated: $(STAMP)
	$(BIN)/python docs/generate.py
	$(BIN)/python config/prometheus/generate.py

dashboards: $(STAMP)
	$(BIN)/python -m dashboards.generate
	$(BIN)/python deploy/kubernetes/generate.py

# The manifests that copy other files: the PrometheusRule, the dashboards' ConfigMap, the HA StatefulSets.
kubernetes: $(STAMP)
	$(BIN)/python deploy/kubernetes/generate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
