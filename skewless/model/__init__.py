"""The offline model pipeline: Spark ML stages declared in YAML (`spec`), fitted on a dataset version
(`fitting`), written as a sealed package (`job`: `skewless model fit`). Custom stages: `custom`."""
