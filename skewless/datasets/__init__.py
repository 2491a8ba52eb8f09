"""skewless.datasets."""
