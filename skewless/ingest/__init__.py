"""skewless.ingest."""
