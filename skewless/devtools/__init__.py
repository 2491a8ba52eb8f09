"""skewless.devtools."""
