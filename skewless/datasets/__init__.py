"""Versioned training snapshots: `spec` (definitions), `transforms` (pure), `quality` (Great
Expectations), `versions` (the dataset_versions table), `snapshot_job`, `catalog_job`.
"""
