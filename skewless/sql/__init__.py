"""Ad hoc SQL as a role: `job` is `skewless sql`, `tables_job` is `skewless tables`.
"""
