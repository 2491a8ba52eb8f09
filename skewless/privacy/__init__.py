"""The privacy step and `forget`: `transforms` is pure (keyed hashing, policy application, subject
rows), `job` is `skewless forget` and `skewless purge`.
"""
