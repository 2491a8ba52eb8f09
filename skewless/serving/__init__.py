"""skewless.serving."""
