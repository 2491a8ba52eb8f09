"""skewless.core."""
