"""Ad hoc SQL as a role: `job` is `skewless sql` (a query, the shell, the JDBC server), `tables_job` is
`skewless tables`, `roles` binds a session, `guard` reports the JVM guard's refusals; the rules
themselves are the SQL extension's (`jvm/`).

For a notebook: `spark = skewless.sql.session(role="analyst")` is a session bound to the role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from skewless.core.config import Config


def session(role: str | None = None, config: str | Config | None = None, *, spark: SparkSession | None = None,
            whole_application: bool = True) -> SparkSession:
    """A Spark session bound to `role` (default: the policy's default_role): the project's tables by plain
    name as the role's views, `spark.sql` and the DataFrame API checked by the JVM guard before anything
    runs. `config`: a warehouse YAML or a loaded Config (default $SKEWLESS_CONFIG, else
    conf/warehouse.yaml). `spark`: bind this session instead of building one (it must have the
    extension). With `whole_application` (the default) every other session of the JVM is bound too
    and reads nothing."""
    from skewless.core.config import Config, config_path, load
    from skewless.core.session import build_session
    from skewless.sql.roles import bind

    cfg = config if isinstance(config, Config) else load(config_path(config))
    spark = spark if spark is not None else build_session(cfg.spark)
    bind(spark, cfg, role or cfg.privacy_policy.default_role, whole_application=whole_application)
    return spark
