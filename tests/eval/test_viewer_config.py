"""The viewer's settings and input files checked at start: a wrong kind of value, a missing file or a
broken YAML is one message naming it, never a traceback nor a server that silently shows no item
(issue 16 items 11 and 14: every viewer setting validated)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eval.viewer.server import ViewerConfigError, start_server
from tests.eval.test_viewer import make_world

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("change, message", [
    ({"sample": {"size": "20", "seed": 0}}, "sample.size must be a positive integer or null, got '20'"),
    ({"sample": {"size": True}}, "sample.size must be a positive integer or null"),
    ({"sample": {"size": 0}}, "sample.size must be a positive integer or null"),
    ({"sample": {"seed": "0"}}, "sample.seed must be an integer >= 0"),
    ({"sample": {"sizes": 20}}, "sample: unknown key 'sizes'"),
    ({"sample": [210]}, "sample must be {size, seed}"),
    ({"image_roots": "outputs/run/data"}, "image_roots must be a list of folders"),
    ({"items_file": "missing/items.jsonl"}, "items_file: no such file"),
    ({"predictions": {"model-a": "missing.jsonl"}}, "predictions.model-a: no such file"),
])
def test_a_wrong_setting_or_missing_file_is_refused_at_start(tmp_path, monkeypatch, change, message):
    monkeypatch.setenv("CAROL_TOKEN", "tok-carol")
    config = make_world(tmp_path)
    with pytest.raises(ViewerConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        start_server({**config, **change})


def run_serve(config_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eval.viewer", "serve", "--config", str(config_path)], cwd=ROOT,
                          env={**os.environ, "CAROL_TOKEN": "tok-carol"}, capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_command_line_names_the_problem_without_a_traceback(tmp_path):
    config = make_world(tmp_path)
    missing = tmp_path / "missing.yaml"
    broken = tmp_path / "broken.yaml"
    broken.write_text("annotators: [")
    no_items = tmp_path / "no_items.yaml"
    no_items.write_text(yaml.safe_dump({**config, "items_file": str(tmp_path / "gone.jsonl")}))
    for path, expected in ((missing, "No such file"), (broken, "broken.yaml"), (no_items, "items_file: no such file")):
        result = run_serve(path)
        assert result.returncode != 0 and expected in result.stderr, result.stderr[-1500:]
        assert "Traceback" not in result.stderr
