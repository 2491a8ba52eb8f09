"""spark-submit entry point for `skewless drift`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/drift.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("drift"))
