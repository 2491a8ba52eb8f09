"""Drift monitoring: PSI, KS and Jensen-Shannon between a training reference and live serving slices.

`profile` (Spark: cuts and cell counts, a constant number of passes), `metrics` and `evaluate` (numpy:
the formulas and the verdicts), `settings` (conf/monitoring.yaml), `store` (the Delta tables),
`reference` (the two sides), `report` (the HTML page), `alerts` (the webhook), `job` (`skewless drift`).
"""
