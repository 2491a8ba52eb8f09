"""Drift monitoring: PSI, KS and Jensen-Shannon between a training reference and live serving slices.

Empty room: `transforms.py` (histograms, sketches, metrics), `job.py` (`skewless drift`).
"""
