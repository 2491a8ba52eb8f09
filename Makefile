# skewless: `make demo` and `make test` set everything up on a fresh clone (venv, packages, Delta jars).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
DEMO   ?= demo-data
PYTEST_ARGS ?=
SK     := $(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse

.PHONY: setup demo test test-fast chaos bench lint dist cluster-demo clean check-dag

setup: $(STAMP)
	@$(BIN)/skewless jars fetch
	@# The HTML reports are checked in a real headless browser: Debian's Chromium, installed once.
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium (HTML report tests)"; \
	    SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[spark,dev]'
	touch $(STAMP)

demo: setup
	rm -rf $(DEMO)
	@# Five hours of traffic: 00-02 train the model; 03 and 04 are served after it ships, and from 04
	@# on the device features drift (the generator's --drift-from). Serving logs format v1 (JSON lines)
	@# until 03, then v2 (Avro): hour 03's folder holds both (a file of 02 flushed late, and v2's).
	$(SK) generate --start 2026-11-25T00 --hours 5 --rps 40 --seed 7 --drift-from 2026-11-25T04 \
	    --format avro --avro-from 2026-11-25T03
	@# Exit 1 = loaded what could be read, and a file could not be read whole: the generator
	@# simulates a host that crashed mid-upload; the cut file is named in the audit and the quarantine.
	for h in 00 01 02; do $(SK) compact --hour 2026-11-25T$$h || [ $$? -eq 1 ] || exit 1; done
	$(SK) sql --role ml_engineer \
	    "SELECT event_date, event_hour, model.version AS model_version, count(*) AS rows, \
	            round(avg(prediction.score), 4) AS avg_score, \
	            count_if(feature_status['ip_risk'] = 'timeout') AS ip_risk_timeouts \
	     FROM feature_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
	$(SK) sql --role privacy_officer \
	    "SELECT landing_hour, reason, count(*) AS n FROM feature_logs_quarantine GROUP BY 1, 2 ORDER BY 1, 2"
	$(SK) tables describe feature_logs
	$(SK) sql --role analyst "SELECT * FROM feature_logs LIMIT 3"
	$(SK) labels --through 2027-03-31
	$(SK) sql --role ml_engineer \
	    "SELECT label_state, label, count(*) AS rows, round(avg(label_delay_s) / 86400, 1) AS avg_delay_days \
	     FROM labeled_examples GROUP BY 1, 2 ORDER BY 1, 2"
	$(SK) snapshot create fraud_daily --as-of 2027-04-01
	$(SK) datasets list
	$(SK) model fit fraud_daily@latest --spec conf/models/fraud-pipeline.yaml --out $(DEMO)/models/fraud
	@# The pre-deploy gate: exit 1 (deploy blocked) if any logged example's score differs by > 1e-6.
	$(SK) skew-test --model $(DEMO)/models/fraud --examples 5000 --report $(DEMO)/skew-report.html
	$(SK) sql --role ml_engineer "SELECT tested_at, model_version, examples, max_abs_diff, passed FROM skew_tests"
	@# The model is live. The night of 2026-11-25, one run does the day's duty: it compacts the hours not
	@# compacted yet (03 and 04; 00-02 are skipped: compacted, no file since), ingests the day's labels,
	@# purges, makes the snapshots due (fraud_daily is weekly, on Mondays: not tonight) and checks drift
	@# of the day and of each hour against fraud_daily@latest: in hour 04 the device features alert
	@# (exit 1, checked). Its morning page: $(DEMO)/warehouse/_reports/nightly/2026-11-25.html
	$(SK) nightly --date 2026-11-25; test $$? -eq 1
	$(SK) sql --role ml_engineer \
	    "SELECT current_slice, segment, feature, metric, round(value, 3) AS value, status FROM drift_metrics \
	     WHERE status IN ('warn', 'alert') ORDER BY 1, 2, 3, 4"
	$(SK) sql --role ml_engineer "SELECT nightly_date, step, status, round(seconds, 1) AS seconds FROM nightly_steps ORDER BY position"

test: setup
	$(BIN)/pytest -q --durations=25 $(PYTEST_ARGS)

# Pure logic only (no JVM): for iterating; `make test` runs these too.
FAST_TESTS = tests/test_statements.py tests/test_properties.py tests/test_config.py tests/test_logformat.py \
             tests/test_logger.py tests/test_avroformat.py tests/test_nightly_plan.py
test-fast: setup
	$(BIN)/pytest -q $(wildcard $(FAST_TESTS)) $(PYTEST_ARGS)

# The long kill campaign (make test kills compact once): compact, labels and snapshot create each
# SIGKILLed at 20+ seeded random points, rerun, compared row for row; figures in bench/results/chaos-*.json.
chaos: setup
	rm -f bench/results/chaos-*.json
	SKEWLESS_CHAOS_KILLS=20 $(BIN)/pytest -q tests/test_kills.py

bench: setup
	$(PY) bench/compact.py
	$(PY) bench/labels.py
	$(PY) bench/labels.py --rows 6000000 --days 180
	$(PY) bench/snapshot.py
	$(PY) bench/skew.py
	$(PY) bench/drift.py
	$(PY) bench/sql.py
	$(PY) bench/nightly.py

# The Airflow DAG, loaded by Airflow itself: Airflow and its Spark provider in their own virtualenv
# (never in the project's), a DagBag import with no errors, then the task graph and arguments checked.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_PINS ?= apache-airflow==3.3.2 apache-airflow-providers-apache-spark==6.3.4
check-dag:
	@test -f $(AIRFLOW_VENV)/.done || { rm -rf $(AIRFLOW_VENV) && $(PYTHON) -m venv $(AIRFLOW_VENV) \
	    && $(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip \
	    && $(AIRFLOW_VENV)/bin/pip install --quiet $(AIRFLOW_PINS) && touch $(AIRFLOW_VENV)/.done; }
	AIRFLOW_HOME=$$(mktemp -d) $(AIRFLOW_VENV)/bin/python deploy/airflow/check_dag.py

lint: setup
	$(BIN)/ruff check skewless jobs tests bench deploy
	$(BIN)/mypy
	$(BIN)/lint-imports

# The wheel (`pip install skewless` / `skewless[spark]`) and the zip `spark-submit --py-files` takes.
dist: setup
	rm -rf dist
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PY) -m skewless.devtools.pyzip dist/skewless.zip
	@ls -l dist

# The demo's compaction and labels on a Spark standalone cluster (a master and two workers on
# 127.0.0.1), submitted with spark-submit from outside the project, then the cluster is stopped.
cluster-demo: dist
	$(PY) -m skewless.devtools.cluster demo --work $(DEMO)-cluster

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(DEMO) $(DEMO)-cluster dist build spark-warehouse metastore_db
