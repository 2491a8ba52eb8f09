"""Tools for developers and demos: the traffic generator (`skewless generate`), the --py-files zip
builder, and a local Spark standalone cluster.
"""
