"""The offline model pipeline (Spark ML stages fitted on a dataset version) and its package format.

Empty room: filled by the pre-deploy skew test issue (`transforms.py` fits, `job.py` is `skewless model fit`).
"""
