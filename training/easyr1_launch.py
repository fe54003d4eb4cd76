"""EasyR1's entry point (``verl.trainer.main``) with our environment carried to every Ray worker.

EasyR1 calls ``ray.init(runtime_env={"env_vars": {...}})`` with its own fixed variables. A Ray
cluster it starts itself inherits the driver's environment, but a cluster started beforehand with
``ray start`` (every multi-node run) gives its workers the environment of ``ray start``: the
driver's ``WANDB_MODE`` would never reach the actor that runs the trainer and its wandb logger.
This wrapper adds the variables named in ``DEEPMEDIX_RAY_ENV`` (comma-separated; set by
``training.run``) to EasyR1's ``runtime_env`` (EasyR1's own values are kept), then runs EasyR1's
``main()`` unchanged with the same command line (``config=<yaml>``). Secrets are never forwarded:
Ray keeps a job's runtime_env in its dashboard and logs.

With ``DEEPMEDIX_SHARED_PROBE=<path>`` (several nodes) it also checks, after Ray is up, that every
alive node reads the same bytes at that path: EasyR1's workers open images and the model by
absolute path, so the run folder must be one filesystem shared by all nodes.
"""

from __future__ import annotations

import os
import sys

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def forwarded_env() -> dict[str, str]:
    names = [name.strip() for name in os.environ.get("DEEPMEDIX_RAY_ENV", "").split(",") if name.strip()]
    return {name: os.environ[name] for name in names
            if name in os.environ and not any(marker in name.upper() for marker in SECRET_MARKERS)}


def check_shared_filesystem(ray, path: str) -> None:
    """Every alive Ray node must read what this driver wrote at ``path``."""
    def read_probe(path: str) -> str | None:  # defined here: Ray ships it by value to every node
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return None

    expected = read_probe(path)
    probe = ray.remote(num_cpus=0)(read_probe)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    seen = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                    .remote(path) for node in nodes])
    blind = [node.get("NodeManagerAddress", node["NodeID"]) for node, text in zip(nodes, seen) if text != expected]
    if blind:
        raise SystemExit(f"Ray nodes {blind} do not see {path} as this node wrote it: the run folder must be on a "
                         "filesystem shared by every node (EasyR1 opens images and checkpoints by absolute path)")


def install(ray) -> None:
    """Make ``ray.init`` merge our variables into the runtime_env EasyR1 passes."""
    original = ray.init
    extra, probe = forwarded_env(), os.environ.get("DEEPMEDIX_SHARED_PROBE")

    def init(*args, **kwargs):
        runtime_env = dict(kwargs.pop("runtime_env", None) or {})
        runtime_env["env_vars"] = {**extra, **dict(runtime_env.get("env_vars") or {})}
        result = original(*args, runtime_env=runtime_env, **kwargs)
        if probe:
            check_shared_filesystem(ray, probe)
        return result

    ray.init = init


def main() -> None:
    import ray

    install(ray)
    from verl.trainer import main as easyr1_main

    sys.argv[0] = easyr1_main.__file__ or sys.argv[0]
    easyr1_main.main()


if __name__ == "__main__":
    main()
