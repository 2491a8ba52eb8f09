"""spark-submit entry point for `skewless compact`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/compact.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("compact"))
