"""With a Ray cluster started beforehand (`ray start`, every multi-node run), a worker gets the environment
of `ray start`, not the driver's: EasyR1's own runtime_env has no WANDB_MODE, so without our launcher the
trainer's wandb logger would not be offline. Real Ray, one local node."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

DRIVER = r"""
import os, sys
import ray
if sys.argv[1] == "ours":
    from training import easyr1_launch
    easyr1_launch.install(ray)
ray.init(address=os.environ["RAY_ADDRESS"], runtime_env={"env_vars": {"NCCL_DEBUG": "WARN"}})  # as EasyR1 does

@ray.remote(num_cpus=0)
def seen():
    return os.environ.get("WANDB_MODE"), os.environ.get("NCCL_DEBUG")

print("SEEN", *ray.get(seen.remote()))
"""  # with ours, DEEPMEDIX_SHARED_PROBE also runs the shared-filesystem check on every (here: one) Ray node


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = 6400 + os.getpid() % 500
    temp = Path(f"/tmp/ray-{os.getpid()}")
    env = {key: value for key, value in os.environ.items() if key != "WANDB_MODE"}  # `ray start` without it
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp}", "--block"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    time.sleep(8)
    yield address
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.parametrize("launcher, expected", [("easyr1", "None"), ("ours", "offline")])
def test_wandb_mode_reaches_ray_workers_only_through_our_launcher(cluster, launcher, expected, tmp_path):
    root = Path(__file__).resolve().parents[2]
    probe = tmp_path / "probe"
    probe.write_text("written by rank 0")
    env = {**os.environ, "RAY_ADDRESS": cluster, "WANDB_MODE": "offline", "DEEPMEDIX_RAY_ENV": "WANDB_MODE",
           "PYTHONPATH": str(root), "DEEPMEDIX_SHARED_PROBE": str(probe)}
    result = subprocess.run([sys.executable, "-c", DRIVER, launcher], env=env, capture_output=True, text=True,
                            timeout=300, cwd=root)
    line = [text for text in result.stdout.splitlines() if text.startswith("SEEN")]
    assert line, result.stdout[-2000:] + result.stderr[-3000:]
    assert line[0].split()[1:] == [expected, "WARN"]
