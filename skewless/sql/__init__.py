"""skewless.sql."""
