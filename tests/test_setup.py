"""`make setup` is idempotent: once it has run, the environment is up to date."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="runs inside the .venv that `make setup` builds (use `make test`)",
)
def test_setup_is_up_to_date_after_it_ran():
    # `make -q` exits 0 only if the target needs no work: a second `make setup` is a no-op.
    result = subprocess.run(["make", "-q", "setup"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, "make setup would reinstall although nothing changed"
