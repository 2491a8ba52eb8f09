from pathlib import Path

import pytest

from skewless.core.config import load
from skewless.core.errors import ConfigError

from .conftest import ROOT


def _write(tmp_path: Path, text: str, models: dict[str, str] | None = None) -> Path:
    (tmp_path / "models").mkdir(exist_ok=True)
    for name, body in (models or {}).items():
        (tmp_path / "models" / f"{name}.yaml").write_text(body)
    path = tmp_path / "warehouse.yaml"
    path.write_text(text)
    return path


def test_repo_config_loads_with_models() -> None:
    wh = load(ROOT / "conf" / "warehouse.yaml")
    assert wh.compaction.optimize.min_files == 16
    fraud = wh.model("fraud")
    assert fraud is not None
    assert wh.declared_features()["amount"] == "numeric"
    assert wh.declared_features()["country"] == "categorical"


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "compaction:\n  optimize:\n    min_filez: 3\n")
    with pytest.raises(ConfigError, match=r"compaction\.optimize\.min_filez: unknown key"):
        load(path)


def test_wrong_type_names_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "spark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: expected an integer"):
        load(path)


def test_bad_feature_type_names_file_and_index(tmp_path: Path) -> None:
    path = _write(tmp_path, "{}\n", {"m": "name: m\nfeatures:\n  - {name: x, type: number}\n"})
    with pytest.raises(ConfigError, match=r"m\.yaml: features\[0\]\.type: 'number' is not one of"):
        load(path)


def test_feature_types_must_agree_across_models(tmp_path: Path) -> None:
    path = _write(tmp_path, "{}\n", {
        "a": "name: a\nfeatures:\n  - {name: x, type: numeric}\n",
        "b": "name: b\nfeatures:\n  - {name: x, type: categorical}\n",
    })
    with pytest.raises(ConfigError, match="categorical conflicts with numeric in model a"):
        load(path)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.yaml")
    path = _write(tmp_path, "paths: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load(path)
