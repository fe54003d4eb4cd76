"""training.run prints each stage's command line: an override holding a URL with user:password@
(a cold-start teacher or an evaluation endpoint) must not put the password on the console (issue 16
item 13: secrets are never logged)."""

from training.run import run_logged


def test_a_stage_command_line_is_printed_without_url_credentials(compose_run, tmp_path, capsys):
    cfg = compose_run("default", f"run_dir={tmp_path}")
    run_logged("cold_start", ["python3", "-c", "pass", "teacher.base_url=http://annotator:pw-4d3c2b1a@127.0.0.1:8000/v1"],
               cfg)
    printed = capsys.readouterr().out
    assert "teacher.base_url=http://***@127.0.0.1:8000/v1" in printed
    assert "pw-4d3c2b1a" not in printed + (tmp_path / "logs" / "cold_start.log").read_text()
