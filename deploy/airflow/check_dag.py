"""`make check-dag`: load the DAG with Airflow itself (its own virtualenv) and check its task graph.

Exits non-zero on an import error or any difference from the expected graph and arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # Airflow 3.1+
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2.x, 3.0
    from airflow.models.dagbag import DagBag

STEPS = ["compact", "labels", "purge", "snapshots", "drift"]


def main() -> int:
    folder = Path(__file__).parent
    bag = DagBag(dag_folder=str(folder / "skewless_nightly.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags.get("skewless_nightly")  # from the parsed file, not a metadata database
    assert dag is not None, sorted(bag.dag_ids)
    order = [*STEPS, "verdict"]
    assert sorted(dag.task_ids) == sorted(order), dag.task_ids
    for up, down in zip(order, order[1:], strict=False):
        assert dag.get_task(down).upstream_task_ids == {up}, (down, dag.get_task(down).upstream_task_ids)
    for step in STEPS:
        task = dag.get_task(step)
        args = list(task.application_args)
        assert args[args.index("--steps") + 1] == step and "--exit-zero-on-checks" in args, args
        assert args[args.index("--date") + 1] == "{{ macros.ds_add(ds, -1) }}", args
        assert task.application.endswith("jobs/nightly.py") and task.retries == 2, task.application
    verdict = dag.get_task("verdict")
    assert "--steps" not in verdict.application_args and verdict.retries == 0
    print(f"skewless_nightly: {len(dag.task_ids)} tasks, {' >> '.join(order)}; no import errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
