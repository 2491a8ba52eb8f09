"""The shared base every stage builds on: config, policy, names, errors, paths, Spark session, Delta
and storage helpers, access tags, audit, progress. Imports no stage (an import-linter contract).
"""
