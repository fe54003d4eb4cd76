"""The training targets of the Makefile pass what the user meant to training.run (`make -n`: nothing runs)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(*variables: str) -> subprocess.CompletedProcess:
    # CONDA_PREFIX: the GPU-node path, without the .venv set-up dependency
    return subprocess.run(["make", "-n", "train-all", "CONDA_PREFIX=/opt/env", *variables], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("value, forced", [("1", True), ("true", True), ("0", False), ("", False), ("no", False)])
def test_force_means_what_it_says(value, forced):
    """FORCE=0 used to force (any non-empty value did): every stage's output moved aside, days retrained."""
    result = dry_run(f"FORCE={value}")
    assert result.returncode == 0, result.stderr
    assert ("force=true" in result.stdout) is forced


def test_an_unclear_force_value_is_refused():
    result = dry_run("FORCE=maybe")
    assert result.returncode != 0 and "FORCE=maybe: use FORCE=1" in result.stderr
