"""spark-submit entry point for `skewless snapshot`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/snapshot.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("snapshot"))
