"""A simulated GPU node on CPU: an interpreter whose ``bin`` holds fake trainer entry points.

``SimulatedNode(tmp, gpus)`` builds ``<tmp>/env`` (a venv view of the shared one: the same
site-packages, its own ``bin``) with the real ``llamafactory-cli`` (LLaMA-Factory's real launcher
decides whether and how to call torchrun), a fake ``torchrun`` and a fake ``vllm`` that record their
argv, environment and config; ``tests/training/fake_node`` goes on ``PYTHONPATH``, so every child
process sees ``gpus`` fake CUDA devices (``sitecustomize``), a fake ``verl.trainer.main`` and a fake
``ray``. With ``real_launcher=False`` a shell stand-in builds torchrun's command line as the
launcher does (for tests of resume and force, seconds instead of a minute). ``activate(monkeypatch)`` makes ``training.run`` in this process launch through it.
"""

import json
import os
import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parent / "fake_node"
ROOT = Path(__file__).resolve().parents[2]


class SimulatedNode:
    def __init__(self, tmp: Path, gpus: int, real_launcher: bool = True):
        self.gpus, self.log = gpus, tmp / "node.jsonl"
        self.env = tmp / "env"
        bin_dir = self.env / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        prefix = Path(sys.prefix)
        (self.env / "pyvenv.cfg").write_text((prefix / "pyvenv.cfg").read_text())
        if not (self.env / "lib").exists():
            (self.env / "lib").symlink_to(prefix / "lib")
        self.python = bin_dir / "python"
        if not self.python.exists():
            self.python.symlink_to(sys.executable)
        real_cli = Path(sys.executable).with_name("llamafactory-cli")
        if real_launcher:
            (bin_dir / "llamafactory-cli").symlink_to(real_cli)
        else:  # tests of what happens around a launch: torchrun's argv as LLaMA-Factory's launcher builds it
            (bin_dir / "llamafactory-cli").write_text(
                '#!/bin/bash\nexec torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node '
                '"$NPROC_PER_NODE" launcher.py "$@"\n')
            (bin_dir / "llamafactory-cli").chmod(0o755)
        for name in ("torchrun", "vllm"):  # run by this node's interpreter
            text = (FAKES / name).read_text().split("\n", 1)[1]
            (bin_dir / name).write_text(f"#!{self.python}\n{text}")
            (bin_dir / name).chmod(0o755)
        self.log.touch()

    def activate(self, monkeypatch) -> None:
        monkeypatch.setattr(sys, "executable", str(self.python))
        monkeypatch.setenv("FAKE_GPU_COUNT", str(self.gpus))
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(self.gpus)))  # as SLURM sets it
        monkeypatch.setenv("FAKE_NODE_LOG", str(self.log))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKES), str(ROOT), os.environ.get("PYTHONPATH", "")]))
        monkeypatch.delenv("WANDB_MODE", raising=False)

    def events(self, kind: str) -> list[dict]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [event for event in lines if event["event"] == kind]

    def clear(self) -> None:
        self.log.write_text("")
