"""A simulated GPU node for subprocesses (on PYTHONPATH in tests): with FAKE_GPU_COUNT=N, torch sees N
CUDA devices, minus what CUDA_VISIBLE_DEVICES hides (as the driver does). Calls that would create a CUDA
context (set_device, init, current_device) are recorded in FAKE_NODE_LOG with the process id."""

import importlib.abc
import importlib.util
import json
import os
import sys


def visible_gpus() -> int:
    count = int(os.environ.get("FAKE_GPU_COUNT", "0"))
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return count
    return len([d for d in mask.split(",") if d.strip() and d.strip().lstrip("-").isdigit() and int(d) >= 0][:count])


def record(event: str, **detail) -> None:
    path = os.environ.get("FAKE_NODE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "pid": os.getpid(), "argv": sys.argv, **detail}) + "\n")


def patch(torch) -> None:
    cuda = torch.cuda
    cuda.is_available = lambda: visible_gpus() > 0
    cuda.device_count = lambda: visible_gpus()
    cuda.is_bf16_supported = lambda *a, **k: visible_gpus() > 0
    def recorder(name):
        def call(*args, **kwargs):
            record("cuda_context", call=name)
            return 0
        return call

    for name in ("set_device", "init", "current_device", "_lazy_init"):
        setattr(cuda, name, recorder(name))


class _PatchTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("FAKE_GPU_COUNT"):
    sys.meta_path.insert(0, _PatchTorch())
