"""spark-submit entry point for `skewless model`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/model.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("model"))
