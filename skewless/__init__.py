"""skewless: served-feature logging warehouse on PySpark + Delta Lake."""

__version__ = "0.1.0"
