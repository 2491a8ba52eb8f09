"""Hourly compaction of landing logs: `parse` and `transforms` are pure, `job` is `skewless compact`.
"""
