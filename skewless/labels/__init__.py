"""skewless.labels."""
