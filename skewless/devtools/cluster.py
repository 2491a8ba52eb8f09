"""A Spark standalone cluster on 127.0.0.1 from the installed pyspark: a master and workers of one core
each, for the cluster test and `make cluster-demo`. Stopped on exit, also on failure.

    python -m skewless.devtools.cluster demo --work demo-data-cluster

Everything listens on 127.0.0.1 only; the web UIs are used to wait until every worker registered.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType

SPARK_HOME = Path(str(resources.files("pyspark")))  # pip's pyspark is a whole Spark distribution
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalCluster:
    """`with LocalCluster(workers=2) as c: c.submit(...)`: the master URL is `c.url`."""

    workers: int = 2
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="skewless-cluster-")))
    worker_memory: str = "2g"
    timeout_s: float = 90.0
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://{LOOPBACK}:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": LOOPBACK,
                "SPARK_LOG_DIR": str(self.work_dir / "logs"), "PYSPARK_PYTHON": sys.executable}

    def _start(self, name: str, *args: str) -> None:
        log = (self.work_dir / f"{name}.log").open("wb")
        self._procs.append(subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), *args], env=self._env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True))  # its own group: stopped with its children

    def __enter__(self) -> LocalCluster:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start("master", "org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
                        "--port", str(self.port), "--webui-port", str(self.ui_port))
            for i in range(self.workers):
                self._start(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", self.url, "--host", LOOPBACK,
                            "--cores", "1", "--memory", self.worker_memory, "--webui-port", str(free_port()),
                            "--work-dir", str(self.work_dir / f"worker-{i}"))
            self._wait_for_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.ui_port}/json/", timeout=5) as resp:
            state = json.loads(resp.read())
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                if self.alive_workers() >= self.workers:
                    return
            except OSError:
                pass  # the master's UI is not up yet
            if any(p.poll() is not None for p in self._procs):
                break
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.work_dir.glob("*.log")))
        raise RuntimeError(f"standalone cluster at {self.url} did not get {self.workers} workers in "
                           f"{self.timeout_s:.0f}s\n{logs}")

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._procs.clear()

    def submit(self, job: Path, args: Sequence[str], *, py_files: Path, jars: str, cwd: Path,
               env: dict[str, str] | None = None, conf: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`spark-submit --master spark://... --py-files ZIP --jars JARS [--conf K=V ...] job ARGS` in `cwd`."""
        settings = {"spark.executor.cores": "1", "spark.executor.memory": "1g", "spark.sql.shuffle.partitions": "4",
                    "spark.ui.enabled": "false", "spark.driver.host": LOOPBACK, **(conf or {})}
        cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", self.url, "--py-files", str(py_files),
               "--jars", jars, *[a for k, v in settings.items() for a in ("--conf", f"{k}={v}")], str(job), *args]
        return subprocess.run(cmd, cwd=cwd, env={**self._env(), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)


def demo(work: Path, root: Path) -> int:
    """Generate two hours of traffic, run the day's nightly on the cluster, then the labels backfill;
    print each job's summary. Exit 1 (a check failed) is expected of the nightly: the cluster demo's
    warehouse has no published dataset yet, so drift has no reference."""
    from skewless.core.jars import require_jars

    landing, warehouse = work / "landing", work / "warehouse"
    roots = ["--config", str(root / "conf" / "warehouse.yaml"), "--landing", str(landing), "--warehouse",
             str(warehouse)]
    subprocess.run([sys.executable, "-m", "skewless", *roots, "generate", "--start", "2026-11-25T00", "--hours", "2",
                    "--rps", "10", "--seed", "7"], check=True)
    jars = ",".join(str(p) for p in require_jars())
    with LocalCluster(workers=2, work_dir=work / "cluster") as cluster:
        print(f"cluster: {cluster.url} with {cluster.alive_workers()} workers", file=sys.stderr)
        for job, args in (("nightly.py", ["--date", "2026-11-25"]), ("labels.py", ["--through", "2027-03-31"])):
            out = cluster.submit(root / "jobs" / job, [*roots, *args], py_files=root / "dist" / "skewless.zip",
                                 jars=jars, cwd=work)
            sys.stderr.write(out.stderr if out.returncode > 1 else "")
            print(out.stdout.strip().splitlines()[-1] if out.stdout.strip() else f"{job}: no summary")
            if out.returncode > 1:
                return out.returncode
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skewless.devtools.cluster")
    ap.add_argument("action", choices=("demo",))
    ap.add_argument("--work", default="demo-data-cluster", help="folder for landing, warehouse and cluster logs")
    ap.add_argument("--root", default=".", help="the project checkout (jobs/, conf/, dist/)")
    args = ap.parse_args(argv)
    return demo(Path(args.work).resolve(), Path(args.root).resolve())


if __name__ == "__main__":
    raise SystemExit(main())
