"""spark-submit entry point for `skewless skew-test`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/skew_test.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("skew-test"))
