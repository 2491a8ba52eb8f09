"""spark-submit entry point for `skewless nightly`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/nightly.py --date 2026-11-25
"""

from skewless.cli import submit

raise SystemExit(submit("nightly"))
