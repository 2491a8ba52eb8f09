"""Airflow DAG: skewless's nightly duty as one Spark submission per step, on the date before the run.

Each task is `spark-submit jobs/nightly.py --date D --steps STEP --exit-zero-on-checks`: a step that
completed for D is skipped by the job itself, so Airflow's retries resume instead of redoing work, and a
step that only found a failing check (a quality gate, a drift alert) lets the next steps run. The last
task, `verdict`, runs the nightly with every step already done: it writes the morning report and fails
(exit 1) when any step's check failed, so the DAG run shows the day's state. The warehouse lease makes
a concurrent manual run wait (`--wait-minutes`), never interleave.

Settings (environment of the Airflow workers): SKEWLESS_HOME (a checkout with `make dist` run),
SKEWLESS_CONFIG, SKEWLESS_SPARK_CONN (an Airflow Spark connection), SKEWLESS_JARS (`skewless jars`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.sdk import DAG, chain
    from airflow.timetables.trigger import CronTriggerTimetable
except ImportError:  # Airflow 2.x
    from airflow import DAG  # type: ignore[no-redef,attr-defined]
    from airflow.models.baseoperator import chain  # type: ignore[no-redef]
    from airflow.timetables.trigger import CronTriggerTimetable

HOME = os.environ.get("SKEWLESS_HOME", "/opt/skewless")
CONFIG = os.environ.get("SKEWLESS_CONFIG", f"{HOME}/conf/warehouse.yaml")
SPARK_CONN = os.environ.get("SKEWLESS_SPARK_CONN", "spark_default")
JARS = os.environ.get("SKEWLESS_JARS", "")
STEPS = ("compact", "labels", "purge", "snapshots", "drift")
# The run at 02:00 UTC on day X processes day X - 1 (its landing hours are closed by then).
DAY = "{{ macros.ds_add(ds, -1) }}"

with DAG(
    dag_id="skewless_nightly",
    description="compact, labels, purge, snapshots, drift for the previous day; resumable per step",
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10), "owner": "ml-platform"},
    tags=["skewless"],
) as dag:
    def submit(task_id: str, *args: str, retries: int = 2) -> SparkSubmitOperator:
        return SparkSubmitOperator(
            task_id=task_id, conn_id=SPARK_CONN, application=f"{HOME}/jobs/nightly.py",
            py_files=f"{HOME}/dist/skewless.zip", jars=JARS or None, name=f"skewless-nightly-{task_id}",
            application_args=["--config", CONFIG, "--date", DAY, "--wait-minutes", "30", *args],
            env_vars={"SKEWLESS_CONFIG": CONFIG}, retries=retries)

    tasks = [submit(step, "--steps", step, "--exit-zero-on-checks") for step in STEPS]
    chain(*tasks, submit("verdict", retries=0))
