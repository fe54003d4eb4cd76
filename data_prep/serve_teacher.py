"""Serve the configured cold-start teacher with vLLM on chosen GPUs, for as long as it is needed.

``served_teacher(...)`` starts ``vllm serve <teacher.model> --host <host> --port <port>
--tensor-parallel-size <len(gpus)>`` with ``CUDA_VISIBLE_DEVICES=<gpus>``, waits until
``<base_url>/models`` lists the model (or vLLM exits, or the start-up timeout passes), and stops the
server (SIGTERM to its process group, then SIGKILL) when the block ends, also on errors and Ctrl-C.
The cold-start stage of ``training.run`` uses it with ``cold_start.serve.enabled=true``
(``make train-all SERVE_TEACHER=1 TEACHER_GPUS=0,1,2,3``), so the whole chain runs unattended and
the GPUs are free again for stage 2. ``python -m data_prep.serve_teacher [--gpus 0,1] [key=value
...]`` serves it in the foreground (``make serve-teacher``). The endpoint must be local: the server
binds the host of ``teacher.base_url``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import OmegaConf

from data_prep.endpoint import EndpointConfig, EndpointUnavailable, is_local, preflight

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "data" / "cold_start.yaml"


def teacher_config(overrides: list[str]) -> EndpointConfig:
    """The teacher section of recipes/data/cold_start.yaml with the run's overrides."""
    cfg = OmegaConf.merge(OmegaConf.load(RECIPE), OmegaConf.from_dotlist(list(overrides)))
    section = cfg.teacher
    return EndpointConfig(**{key: section[key] for key in EndpointConfig.__dataclass_fields__ if key in section})


def vllm_command(config: EndpointConfig, gpus: str, extra: list[str]) -> list[str]:
    url = urlparse(config.base_url)
    vllm = Path(sys.executable).with_name("vllm")
    return [str(vllm) if vllm.exists() else "vllm", "serve", config.model, "--host", url.hostname or "127.0.0.1",
            "--port", str(url.port or 80), "--tensor-parallel-size", str(len([g for g in gpus.split(",") if g.strip()])),
            *extra]


def stop(process: subprocess.Popen, grace_s: float = 60.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # vLLM's engine and workers are its children
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def served_teacher(config: EndpointConfig, gpus: str, extra: list[str] = (), startup_timeout_s: float = 1800.0,
                   log: Path | None = None, poll_s: float = 5.0):
    if not is_local(config.base_url):
        raise ValueError(f"serving the teacher needs a local teacher.base_url, got {config.base_url}")
    with contextlib.suppress(EndpointUnavailable):  # something already listens there: do not start a second one
        preflight(config, timeout_s=5.0)
        raise ValueError(f"{config.base_url} already answers; stop that server or leave cold_start.serve off")
    command = vllm_command(config, gpus, list(extra))
    print(f"[serve_teacher] {' '.join(command)} (CUDA_VISIBLE_DEVICES={gpus})", flush=True)
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    output = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env={**os.environ, "CUDA_VISIBLE_DEVICES": gpus}, stdout=output,
                               stderr=subprocess.STDOUT if output else None, start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise EndpointUnavailable(f"vLLM exited with code {process.returncode} before serving {config.model}"
                                          + (f"; its log: {log}" if log else ""))
            try:
                preflight(config, timeout_s=5.0)
                break
            except EndpointUnavailable as error:
                if time.monotonic() > deadline:
                    raise EndpointUnavailable(f"vLLM did not serve {config.model} within {startup_timeout_s:.0f} s: "
                                              f"{error}") from None
            time.sleep(poll_s)
        print(f"[serve_teacher] {config.model} is served at {config.base_url}", flush=True)
        yield process
    finally:
        stop(process)
        if output:
            output.close()
        print("[serve_teacher] vLLM stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", default="0,1,2,3,4,5,6,7", help="CUDA_VISIBLE_DEVICES of the server")
    parser.add_argument("--startup-timeout", type=float, default=1800.0)
    parser.add_argument("overrides", nargs="*", help="cold_start.yaml overrides, e.g. teacher.model=...")
    args = parser.parse_args()
    with served_teacher(teacher_config(args.overrides), args.gpus, startup_timeout_s=args.startup_timeout) as process:
        try:
            process.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
