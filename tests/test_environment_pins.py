"""The three places that name versions agree: requirements/cpu.in, requirements/cpu.lock
(CPU: tests and demo) and environment.yml (GPU nodes), and both satisfy pyproject.toml."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# Packages that differ between CPU and GPU on purpose: vLLM 0.11 needs torch 2.8.0, while CPU
# machines install torch 2.14.1 (served from local disk on our build machines).
DIFFER_BY_DESIGN = {"torch", "torchvision", "torchaudio"}

# What the GPU and CPU environments must both pin, identically: the trainer stack.
MUST_AGREE = {
    "transformers", "llamafactory", "trl", "peft", "accelerate", "datasets",
    "numpy", "omegaconf", "hydra-core", "rouge-score", "sacrebleu", "wandb",
}


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _exact_pins(lines: list[str], source: str) -> dict[str, str]:
    """name -> version for `name==version` lines; fails on duplicates."""
    pins: dict[str, str] = {}
    for line in lines:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{source}: {name} is listed twice"
        specs = list(requirement.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            pins[name] = specs[0].version
    return pins


def cpu_lock() -> dict[str, str]:
    lines = _requirement_lines(ROOT / "requirements/cpu.lock")
    pins = _exact_pins(lines, "cpu.lock")
    assert len(pins) == len(lines), "every line of cpu.lock must be an exact `name==version` pin"
    return pins


def cpu_direct() -> dict[str, str]:
    return _exact_pins(_requirement_lines(ROOT / "requirements/cpu.in"), "cpu.in")


def gpu_pip_lines() -> list[str]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml must have exactly one pip section"
    return [line for line in pip_sections[0] if not line.startswith("-")]


def gpu_pins() -> dict[str, str]:
    return _exact_pins(gpu_pip_lines(), "environment.yml")


def test_every_direct_dependency_is_locked_at_its_pin():
    lock = cpu_lock()
    for name, version in cpu_direct().items():
        assert name in lock, f"{name} is in cpu.in but not in cpu.lock: run `make lock`"
        assert lock[name] == version, f"{name}: cpu.in pins {version}, cpu.lock has {lock[name]}"


def test_gpu_and_cpu_environments_agree_where_both_pin():
    lock, gpu = cpu_lock(), gpu_pins()
    overlap = (lock.keys() & gpu.keys()) - DIFFER_BY_DESIGN
    assert MUST_AGREE <= overlap, f"not pinned on both sides: {sorted(MUST_AGREE - overlap)}"
    disagreements = {n: (lock[n], gpu[n]) for n in sorted(overlap) if lock[n] != gpu[n]}
    assert not disagreements, f"(cpu.lock, environment.yml) disagree: {disagreements}"


def test_gpu_environment_has_the_gpu_stack():
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in spec["dependencies"]
    gpu = gpu_pins()
    assert gpu["torch"] == "2.8.0" and gpu["vllm"].startswith("0.11.")
    by_name = {canonicalize_name(Requirement(line).name): Requirement(line) for line in gpu_pip_lines()}
    easyr1 = by_name["verl"].url
    assert re.fullmatch(r"git\+https://github\.com/hiyouga/EasyR1\.git@[0-9a-f]{7,40}", easyr1), easyr1
    assert by_name["flash-attn"].url.endswith("cp311-cp311-linux_x86_64.whl")
    assert "torch2.8" in by_name["flash-attn"].url


def test_cpu_lock_never_installs_gpu_only_packages():
    lock = cpu_lock()
    for name in ("vllm", "verl", "flash-attn", "deepspeed"):
        assert name not in lock, f"{name} must not be installed on CPU machines"


@pytest.mark.parametrize("environment", ["cpu.lock", "environment.yml"])
def test_pinned_versions_satisfy_pyproject(environment):
    pins = cpu_lock() if environment == "cpu.lock" else gpu_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in {environment}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{environment} pins {name}=={pins[name]}, pyproject.toml asks for {requirement.specifier}"
        )
