"""spark-submit entry point for `skewless sql` (a query, the shell, or `--serve` for JDBC), e.g.

    spark-submit --py-files dist/skewless.zip --jars "$(skewless jars)" jobs/sql.py --role analyst --serve
"""

from skewless.cli import submit

raise SystemExit(submit("sql"))
