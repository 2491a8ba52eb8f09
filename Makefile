# skewless: `make demo` and `make test` set everything up on a fresh clone (venv, packages, Delta jars).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
JARS   := .jars/delta-spark_4.1_2.13-4.4.0.jar .jars/delta-storage-4.4.0.jar
DEMO   ?= demo-data
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint clean spark-submit-args

setup: $(STAMP) $(JARS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(JARS): | $(STAMP)
	$(PY) -m jobs.jars fetch

demo: setup
	rm -rf $(DEMO)
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse \
	    generate --start 2026-11-25T00 --hours 3 --rps 40 --seed 7
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse compact --date 2026-11-25
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse sql --role ml_engineer \
	    "SELECT event_date, event_hour, model.version AS model_version, count(*) AS rows, \
	            round(avg(prediction.score), 4) AS avg_score, \
	            count_if(feature_status['ip_risk'] = 'timeout') AS ip_risk_timeouts \
	     FROM feature_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse sql --role privacy_officer \
	    "SELECT landing_hour, reason, count(*) AS n FROM feature_logs_quarantine GROUP BY 1, 2 ORDER BY 1, 2"
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse tables describe feature_logs
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse sql --role analyst \
	    "SELECT * FROM feature_logs LIMIT 3"
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse labels --through 2027-03-31
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse sql --role ml_engineer \
	    "SELECT label_state, label, count(*) AS rows, round(avg(label_delay_s) / 86400, 1) AS avg_delay_days \
	     FROM labeled_examples GROUP BY 1, 2 ORDER BY 1, 2"
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse snapshot create fraud_daily --as-of 2027-04-01
	$(BIN)/skewless --landing $(DEMO)/landing --warehouse $(DEMO)/warehouse datasets list

test: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) bench/compact.py
	$(PY) bench/labels.py
	$(PY) bench/labels.py --rows 6000000 --days 180
	$(PY) bench/snapshot.py

lint: setup
	$(BIN)/ruff check jobs tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .jars $(DEMO) spark-warehouse metastore_db
