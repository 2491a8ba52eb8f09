"""Log format v1 as JSON Schema files (package data, read with importlib.resources)."""
