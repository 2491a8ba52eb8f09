"""The serving side: log format, prediction logger, and the Arrow dataset reader.

Never imports pyspark, delta or great_expectations (an import-linter contract, and a test in a fresh
interpreter): `pip install skewless` without the `spark` extra is enough to use it.
"""
