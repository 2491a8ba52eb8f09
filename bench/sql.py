"""Ad hoc SQL benchmark: `make bench` (or `python bench/sql.py [--rps R] [--reps N]`).

Builds a warehouse the way a user does (`skewless generate`, then `skewless compact` for two hours) and
checks it (rows per hour, no null event_hour) before timing anything. Then, in bench/results/sql.json:
- ten small queries as ten `skewless sql --role analyst "..."` invocations (a JVM start each) against
  the same ten through one shell over a pipe (`skewless sql --role analyst < queries.sql`): wall time of
  each way, and the shell's own per-query times;
- in one process, the shell's per-statement path on a bound session (guard in the parser and the check
  rule, Spark's table renderer) against a bare `spark.sql(q).collect()` of the same query on an unbound
  session of the same JVM with the same views, for `SELECT count(*) FROM feature_logs WHERE event_hour = 3`:
  medians of N alternating repetitions and their ratio (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import publish  # noqa: E402 - needs the project root on sys.path first

RESULTS = ROOT / "bench" / "results" / "sql.json"
SKEWLESS = str(Path(sys.executable).parent / "skewless")
TARGET = "SELECT count(*) FROM feature_logs WHERE event_hour = 3"
QUERIES = [
    TARGET,
    "SELECT count(*) FROM feature_logs",
    "SELECT event_hour, count(*) AS n FROM feature_logs GROUP BY 1 ORDER BY 1",
    "SELECT model.version, round(avg(sample_rate), 4) AS rate FROM feature_logs GROUP BY 1",
    "SELECT features.hour_of_day, count(*) FROM feature_logs GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    "SELECT context.region, count(*) FROM feature_logs GROUP BY 1",
    "SELECT max(logged_at), min(logged_at) FROM feature_logs",
    "SELECT count(DISTINCT event_hour) FROM feature_logs",
    "SHOW TABLES",
    "DESCRIBE feature_logs",
]


def build(work: Path, rps: int) -> list[str]:
    roots = ["--landing", str(work / "landing"), "--warehouse", str(work / "warehouse")]
    subprocess.run([SKEWLESS, *roots, "generate", "--start", "2026-11-25T02", "--hours", "2", "--rps", str(rps),
                    "--seed", "3"], check=True, capture_output=True)
    done = subprocess.run([SKEWLESS, *roots, "compact", "--date", "2026-11-25"], capture_output=True, text=True,
                          check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: the generator's cut upload, by design
    return roots


def check_input(roots: list[str]) -> dict[int, int]:
    done = subprocess.run([SKEWLESS, *roots, "sql", "--role", "analyst", "--format", "csv",
                           "SELECT event_hour, count(*) AS n, count_if(event_hour IS NULL) AS nulls FROM feature_logs "
                           "GROUP BY 1 ORDER BY 1"], capture_output=True, text=True, check=True)
    rows = [line.split(",") for line in done.stdout.split()[1:]]
    per_hour = {int(h): int(n) for h, n, _ in rows}
    # The generated hours 02 and 03 (a few of the generator's late records land in the next hour).
    assert per_hour.get(2, 0) > 1000 and per_hour.get(3, 0) > 1000, per_hour
    assert all(int(nulls) == 0 for *_, nulls in rows)
    return per_hour


def cli_invocations(roots: list[str]) -> list[float]:
    out = []
    for q in QUERIES:
        started = time.perf_counter()
        subprocess.run([SKEWLESS, *roots, "sql", "--role", "analyst", q], capture_output=True, check=True)
        out.append(time.perf_counter() - started)
    return out


def shell_pipe(roots: list[str]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    done = subprocess.run([SKEWLESS, *roots, "sql", "--role", "analyst"], input="".join(q + ";\n" for q in QUERIES),
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    per_query = [float(s) for s in re.findall(r"^\(\d+ rows?, ([0-9.]+) s\)$", done.stderr, re.M)]
    assert len(per_query) == len(QUERIES), done.stderr[-2000:]
    return wall, per_query


def same_session(roots: list[str], reps: int) -> dict[str, Any]:
    from skewless.core.config import load
    from skewless.core.session import build_session
    from skewless.sql.roles import bind, register_role_views
    from skewless.sql.shell import _execute

    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(roots[1], roots[3])
    spark = build_session(cfg.spark)
    bare = spark.newSession()
    register_role_views(bare, cfg, "analyst")  # the same views, unbound
    shell = spark.newSession()
    binding = bind(shell, cfg, "analyst", whole_application=False)
    sink = io.StringIO()
    t_bare, t_shell = [], []
    for i in range(reps + 3):  # three warm-ups of each, then alternating repetitions
        started = time.perf_counter()
        bare.sql(TARGET).collect()
        b = time.perf_counter() - started
        started = time.perf_counter()
        assert _execute(shell, binding, TARGET, "table", 1000, sink) == 0
        s = time.perf_counter() - started
        if i >= 3:
            t_bare.append(b)
            t_shell.append(s)
    spark.stop()
    return {"bare_spark_sql_median_s": statistics.median(t_bare), "shell_median_s": statistics.median(t_shell),
            "shell_over_bare": statistics.median(t_shell) / statistics.median(t_bare), "reps": reps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rps", type=int, default=40)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skewless-bench-sql-"))
    roots = build(work, args.rps)
    per_hour = check_input(roots)
    cli = cli_invocations(roots)
    shell_wall, shell_each = shell_pipe(roots)
    session = same_session(roots, args.reps)
    result = {
        "bench": "sql", "at": datetime.now(UTC).isoformat(timespec="seconds"), "rows_per_hour": per_hour,
        "queries": len(QUERIES),
        "cli_invocations_total_s": round(sum(cli), 2), "cli_per_query_median_s": round(statistics.median(cli), 3),
        "shell_pipe_total_s": round(shell_wall, 2), "shell_per_query_s": [round(x, 3) for x in shell_each],
        "cli_total_over_shell_total": round(sum(cli) / shell_wall, 2),
        "same_session": {k: round(v, 4) if isinstance(v, float) else v for k, v in session.items()},
        "target_shell_over_bare_at_most": 1.5,
    }
    publish(RESULTS, result, work)


if __name__ == "__main__":
    main()
