import gzip
import json
from pathlib import Path

import jsonschema

from skewless.devtools.generator import GenSpec, generate
from skewless.ingest.parse import RAW_SCHEMA
from skewless.serving.logformat import json_schema, parse_hour, required_fields

from .conftest import HOUR


def test_spark_read_schema_covers_the_format_fields() -> None:
    spark_fields = {f.name for f in RAW_SCHEMA.fields} - {"_corrupt"}
    assert spark_fields == set(json_schema()["properties"])
    assert set(required_fields()) <= spark_fields


def test_generated_records_follow_the_json_schema(tmp_path: Path) -> None:
    spec = GenSpec(landing=str(tmp_path), start=HOUR, hours=1, rps=20, seed=1, hosts=2, quirks=False)
    totals = generate(spec, progress=False)
    validator = jsonschema.Draft202012Validator(json_schema())
    files = sorted((tmp_path / "predictions").rglob("*.jsonl.gz"))
    assert files, "the generator wrote no files"
    lines = [json.loads(line) for f in files for line in gzip.decompress(f.read_bytes()).splitlines()]
    assert len(lines) == totals["records"] + totals["retries"]
    for rec in lines:
        validator.validate(rec)
    labels = [json.loads(x) for f in (tmp_path / "labels").rglob("*.jsonl") for x in f.read_text().splitlines()]
    label_validator = jsonschema.Draft202012Validator(json_schema("label_v1.json"))
    for lab in labels:
        label_validator.validate(lab)


def test_generator_is_reproducible_by_seed(tmp_path: Path) -> None:
    def run(dest: Path) -> dict[str, bytes]:
        generate(GenSpec(landing=str(dest), start=HOUR, hours=2, rps=10, seed=5, hosts=2), progress=False)
        return {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_parse_hour_accepts_the_documented_forms() -> None:
    assert parse_hour("2026-11-25T13") == HOUR
    assert parse_hour("2026-11-25T13:00") == HOUR
