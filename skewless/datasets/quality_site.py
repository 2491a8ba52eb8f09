"""GX's Data Docs site kept in the warehouse (`<warehouse>/_quality/gx`), on local disk or an object store.

GX's file context needs a local folder. On local disk that is the warehouse's folder itself. On an
object store the context is copied to a temporary local folder, the checkpoint runs there and builds
its page and the index, and every file it added or changed is copied back: GX's own site, through
the Hadoop filesystem the tables already use, with no GX cloud backend and no second set of
credentials. The built pages are not copied down, only their names: GX lists them to build the index,
and never reads them. Two validations at once on an object store both keep their results and pages;
the index uploaded last may miss the other's row until the next validation rebuilds it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from skewless.core.paths import join, local_path
from skewless.core.storage import download_folder, local_files, upload_files
from skewless.datasets.quality import QualityReport, validate

# The built site: GX needs the names of its pages (the index lists them), not their content.
PAGES = "gx/uncommitted/data_docs/"


def validate_with_site(spark: SparkSession, df: DataFrame, suite: dict[str, Any], site: str,
                       run_name: str) -> QualityReport:
    """`validate` as a checkpoint of the GX context at `site` (a local path or any Hadoop URI). The
    report's `docs_page` is the validation's page where it is kept: under `site`."""
    local = local_path(site)
    if local is not None:
        return validate(df, suite, docs_root=local, run_name=run_name)
    with tempfile.TemporaryDirectory(prefix="skewless-gx-") as tmp:
        root = Path(tmp).resolve()
        stubs = download_folder(spark, site, root, names_only=(PAGES,))
        before = local_files(root)
        report = validate(df, suite, docs_root=str(root), run_name=run_name)
        # What GX wrote; a stand-in it left empty is never sent back over the page it stands for.
        written = [rel for rel, stat in local_files(root).items()
                   if before.get(rel) != stat and not (rel in stubs and stat[0] == 0)]
        upload_files(spark, root, site, sorted(written))
    page = report.docs_page
    if page is not None:
        page = join(site, Path(page).resolve().relative_to(root).as_posix())
    return dataclasses.replace(report, docs_page=page)
