"""spark-submit entry point for `skewless forget`: the same arguments, e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/forget.py --help
"""

from skewless.cli import submit

raise SystemExit(submit("forget"))
