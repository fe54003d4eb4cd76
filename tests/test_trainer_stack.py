"""The pinned CPU environment really holds a working trainer stack, offline."""

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _locked_version(name: str) -> str:
    for line in (ROOT / "requirements/cpu.lock").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} not in cpu.lock")


@pytest.mark.parametrize("package", ["torch", "transformers", "llamafactory", "trl", "omegaconf", "hydra-core"])
def test_installed_versions_are_the_locked_ones(package):
    assert version(package) == _locked_version(package)


@pytest.mark.slow
def test_trainers_import_together():
    # One interpreter, as in a real run: LLaMA-Factory's argument parser, its Qwen2-VL plugin,
    # TRL's GRPOTrainer (the CPU GRPO backend) and the Qwen2.5-VL model class.
    code = (
        "from llamafactory.hparams import get_train_args\n"
        "from llamafactory.data.template import TEMPLATES\n"
        "assert 'qwen2_vl' in TEMPLATES\n"
        "from trl import GRPOTrainer, GRPOConfig\n"
        "from transformers import Qwen2_5_VLForConditionalGeneration\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_wandb_logs_offline(tmp_path):
    import wandb

    run = wandb.init(project="deepmedix-r1-test", dir=tmp_path, config={"stage": "test"})
    try:
        assert run.settings.mode == "offline"
        run.log({"reward/overall": 1.0})
    finally:
        run.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline run directory written"


def test_make_test_and_demo_run_offline():
    for target in ("test", "demo"):
        dry_run = subprocess.run(
            ["make", "--no-print-directory", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        )
        python_commands = [line for line in dry_run.stdout.splitlines() if "/bin/python " in line]
        assert python_commands, f"`make -n {target}` shows no python command"
        for command in python_commands:
            for setting in ("WANDB_MODE=offline", "HF_HUB_OFFLINE=1"):
                assert setting in command, f"`make {target}` runs without {setting}: {command}"
