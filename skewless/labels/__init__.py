"""Delayed labels: `transforms` is pure (point-in-time join), `sync` reads the state a run resumes from,
`job` is `skewless labels`.
"""
