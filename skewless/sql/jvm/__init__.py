"""Java sources of the SQL extension (the role guard), compiled by `skewless jars fetch`; not Python."""
