"""The pre-deploy skew test: offline pipeline vs packaged serving model on logged examples.

Empty room: `transforms.py` (per-example comparison, bisection over stages), `job.py` (`skewless skew-test`).
"""
