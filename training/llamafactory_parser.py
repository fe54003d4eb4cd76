"""LLaMA-Factory's own argument parser, run in a child process that sees no GPU.

Why a child: in a process that sees several GPUs, transformers counts them and LLaMA-Factory's
``get_train_args`` refuses ("Please launch distributed training with `llamafactory-cli` or
`torchrun`", hparams/parser.py), so a check in the launching process would stop every multi-GPU
run; and parsing sets the CUDA device, which would leave the launcher holding a CUDA context on
GPU 0 while the trainers run. The child gets ``CUDA_VISIBLE_DEVICES=""`` and parses what the
trainer will parse (with bf16 and DeepSpeed switched off, which a process without a GPU refuses).
One child serves every config of a check (LLaMA-Factory takes seconds to import) and exits when
the check is done.

Protocol: one JSON config per line on stdin (as rendered, None values left out), one JSON list of
problems per line on stdout.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import Any


class LlamaFactoryParser:
    """A child process running LLaMA-Factory's parser; ``env`` is added to the child's environment."""

    def __init__(self, env: dict[str, str] | None = None):
        child_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {})}
        self.errors = tempfile.TemporaryFile(mode="w+")  # the child's log, shown if it dies
        self.process = subprocess.Popen([sys.executable, "-m", "training.llamafactory_parser"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.errors, text=True, bufsize=1,
                                        env=child_env)
        self.lock = threading.Lock()

    def problems(self, config: dict[str, Any]) -> list[str]:
        with self.lock:
            if self.process.poll() is not None:
                return [f"LLaMA-Factory's parser process exited with code {self.process.returncode}"]
            self.process.stdin.write(json.dumps(config) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            self.errors.seek(0)
            tail = self.errors.read()[-1500:]
            return [f"LLaMA-Factory's parser process died (exit code {self.process.wait()}): {tail}"]
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


_shared: LlamaFactoryParser | None = None


def shared() -> LlamaFactoryParser:
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        _shared = LlamaFactoryParser()
    return _shared


def close_shared() -> None:
    """Before trainers start: the parser child holds LLaMA-Factory, torch and transformers in memory."""
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


atexit.register(close_shared)


# ------------------------------------------------------------------------------------- the child


def parse(config: dict[str, Any]) -> list[str]:
    """The config as the trainer will get it: real booleans for every boolean argument
    (``training.check.sft_type_problems``), a known template, then LLaMA-Factory's parser on a copy
    with bf16 and DeepSpeed switched off and a scratch output folder; once the datasets and the model
    are there, no row longer than ``cutoff_len`` (``training.sft_lengths``)."""
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import get_train_args

    from training.check import sft_type_problems

    problems = sft_type_problems(config)
    if config.get("template") not in TEMPLATES:
        problems.append(f"template {config.get('template')!r} is not a LLaMA-Factory template")
    parsable = {**config, "bf16": False, "fp16": False}
    parsable.pop("deepspeed", None)
    parsable["output_dir"] = os.path.join(str(config.get("output_dir", "out")), ".check")
    try:
        model_args, data_args, *_ = get_train_args(parsable)
    except (Exception, SystemExit) as error:  # the parser raises ValueError, AssertionError, exits...
        problems.append(f"LLaMA-Factory: {type(error).__name__}: {error}")
        return problems
    from training.sft_lengths import over_cutoff_problems

    return problems + over_cutoff_problems(model_args, data_args)


def serve() -> None:
    answers, sys.stdout = sys.stdout, sys.stderr  # whatever the libraries print must not corrupt the protocol
    for line in sys.stdin:
        try:
            answer = parse(json.loads(line))
        except Exception as error:  # noqa: BLE001 - a broken request must not kill the server
            answer = [f"LLaMA-Factory parser: {type(error).__name__}: {error}"]
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
