"""skewless.privacy."""
