"""The pre-deploy skew test: offline pipeline vs packaged serving model on logged examples.

`offline` (Spark: sample, transform, one collect), `evaluate` and `compare` (numpy: per-example
differences, bisection over stages), `report` (HTML), `history` (`skew_tests`), `job` (`skewless skew-test`).
"""
