"""spark-submit entry point for `skewless purge`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/purge.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("purge"))
