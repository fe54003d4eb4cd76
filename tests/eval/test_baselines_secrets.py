"""eval.baselines writes baselines.json / baselines.md: an endpoint URL with user:password@ (given with
--set) must reach neither, nor the console (issue 16 item 13: secrets redacted from everything written)."""

import json

from eval.baselines import main
from tests.eval.test_endpoint_backend import items  # noqa: F401 - the fixture

PASSWORD = "pw-0a1b2c3d4e"


def test_url_credentials_reach_no_summary(items, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "baselines"
    code = main(["--models", "medgemma", "--items-file", str(items), "--out", str(out), "--limit", "2",
                 "--set", f"medgemma:endpoint.base_url=http://reader:{PASSWORD}@127.0.0.1:9/v1",  # nothing serves it
                 "--set", "medgemma:endpoint.max_retries=0"])
    assert code == 1
    result = json.loads((out / "baselines.json").read_text())["models"][0]
    assert result["base_url"] == "http://***@127.0.0.1:9/v1" and "EndpointUnavailable" in result["error"]
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and PASSWORD.encode() in path.read_bytes()]
