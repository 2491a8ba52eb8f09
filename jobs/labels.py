"""spark-submit entry point for `skewless labels`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/labels.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("labels"))
