from pathlib import Path

import pytest

from rapport.config import load_settings
from rapport.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_defaults_load() -> None:
    s = load_settings(REPO / "configs" / "default.yaml")
    assert s.window.seconds == 5 and s.video.sample_fps == 4


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAPPORT_WINDOW__SECONDS", "10")
    assert load_settings(REPO / "configs" / "default.yaml").window.seconds == 10


@pytest.mark.parametrize(
    ("yaml", "words"),
    [
        ("window:\n  seconds: 0.5\n", "window.seconds"),
        ("smoothing:\n  tau_s: 0\n", r"smoothing\.tau_s.*greater than 0"),
        ("smoothing:\n  tau_s: -1\n", r"smoothing\.tau_s.*greater than 0"),
        # The old keys (before tau_s) are refused as unknown, never silently ignored.
        ("smoothing:\n  alpha: 0.35\n", r"smoothing\.alpha.*not permitted"),
        ("smoothing:\n  switch_on: 0.5\n", r"smoothing\.switch_on.*not permitted"),
        ("video:\n  sample_fbs: 4\n", "video.sample_fbs"),
        ("- a list\n", "mapping"),
        ("window: [\n", "config"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, yaml: str, words: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml)
    with pytest.raises(InputError, match=words) as e:
        load_settings(cfg)
    assert "\n" not in str(e.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_shipped_yaml_lists_exactly_the_built_in_defaults() -> None:
    assert load_settings(REPO / "configs" / "default.yaml") == load_settings(None)


def test_json_logs_and_no_metrics_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None).logging.format == "text" and load_settings(None).service.metrics
    monkeypatch.setenv("RAPPORT_LOGGING__FORMAT", "json")
    monkeypatch.setenv("RAPPORT_SERVICE__METRICS", "false")
    s = load_settings(None)
    assert s.logging.format == "json" and not s.service.metrics
    monkeypatch.setenv("RAPPORT_LOGGING__FORMAT", "xml")
    with pytest.raises(InputError, match=r"logging\.format"):
        load_settings(None)
