"""How the stages reach GPU nodes: each trainer's environment, node ranks, the shared run folder.

- Environment of every stage subprocess: ``WANDB_MODE=offline`` unless the user set ``WANDB_MODE``
  (the recipes log to wandb; without a key an online run dies at ``on_train_begin``), and this
  interpreter's ``bin`` first on ``PATH``, so the ``torchrun`` LLaMA-Factory's launcher spawns is the
  one of this environment.
- LLaMA-Factory (``llamafactory/launcher.py``, 0.9.5) goes through torchrun only when
  ``FORCE_TORCHRUN`` is set or it counts more than one device; it reads ``NNODES``, ``NODE_RANK``,
  ``NPROC_PER_NODE`` (default: every visible device), ``MASTER_ADDR`` and ``MASTER_PORT`` (default: a
  free local port). Its parser refuses DeepSpeed outside torchrun ("Please use FORCE_TORCHRUN=1"),
  so every GPU launch with more than one process or with DeepSpeed sets them all explicitly.
- Several nodes: rank 0 runs the chain. Another rank only joins the torchrun stages (stage 1 and 2)
  rank 0 launches, through a ticket rank 0 writes into the run folder: seeing it is the proof that
  the run folder is shared (EasyR1 reopens images by absolute path on every node, LLaMA-Factory
  saves on rank 0). Rank 0 launches only once every other rank has acknowledged the ticket. GRPO's
  other nodes are Ray workers (``ray start``), not stages.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig

from data_prep.writers import sha256_of, write_json
from training.render import run_path

DISTRIBUTED_SFT = ("stage1", "stage2")  # the stages other ranks join (torchrun workers)
TICKET_HEARTBEAT_S = 1.0  # how often rank 0 rewrites a waiting ticket (not during the stage), and followers look


class LaunchError(RuntimeError):
    """A launch that cannot work as configured (raised before anything starts)."""


def stage_env(extra: dict[str, str] | None = None, wandb_dir: Path | None = None) -> dict[str, str]:
    """Variables every stage subprocess gets on top of the caller's environment; ``wandb_dir``: where
    wandb writes (offline runs to sync later), unless the user set ``WANDB_DIR``."""
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    if "WANDB_MODE" not in os.environ:  # the user's choice wins, e.g. WANDB_MODE=online
        env["WANDB_MODE"] = "offline"
    if wandb_dir is not None and "WANDB_DIR" not in os.environ:  # else ./wandb of whichever process logs
        wandb_dir.mkdir(parents=True, exist_ok=True)
        env["WANDB_DIR"] = str(wandb_dir)
    return {**env, **(extra or {})}


def node_rank(cfg: DictConfig) -> int:
    return int(cfg.launch.node_rank)


def check_node_rank(cfg: DictConfig) -> None:
    """``launch.node_rank`` must name one of the ``launch.nnodes`` nodes."""
    nnodes = int(cfg.launch.nnodes)
    if not 0 <= node_rank(cfg) < max(nnodes, 1):
        raise LaunchError(f"launch.node_rank={cfg.launch.node_rank} is not in 0..{nnodes - 1} (launch.nnodes={nnodes})")


def uses_torchrun(cfg: DictConfig, deepspeed: bool) -> bool:
    """LLaMA-Factory must go through torchrun: several processes, or DeepSpeed on any GPU count."""
    gpus, nnodes = int(cfg.launch.gpus_per_node), int(cfg.launch.nnodes)
    return nnodes > 1 or gpus > 1 or (deepspeed and gpus >= 1)


def visible_gpus() -> int | None:
    """GPUs this node offers, without touching CUDA: CUDA_VISIBLE_DEVICES, else ``nvidia-smi -L``; None if unknown."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        return len([device for device in mask.split(",") if device.strip()])
    if shutil.which("nvidia-smi") is None:
        return None
    import subprocess

    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def llamafactory_env(cfg: DictConfig, deepspeed: bool) -> dict[str, str]:
    """torchrun settings for ``llamafactory-cli train`` (empty: one plain process, as on CPU)."""
    launch = cfg.launch
    gpus, nnodes = int(launch.gpus_per_node), int(launch.nnodes)
    if nnodes > 1 and gpus < 1:
        raise LaunchError(f"launch.nnodes={nnodes} needs launch.gpus_per_node >= 1 (got {gpus})")
    check_node_rank(cfg)
    if not uses_torchrun(cfg, deepspeed):
        return {}
    seen = visible_gpus()
    if seen is not None and seen < gpus:  # torchrun would start more processes than there are GPUs
        raise LaunchError(f"launch.gpus_per_node={gpus} but this node shows {seen} GPU(s) (CUDA_VISIBLE_DEVICES / "
                          f"nvidia-smi): set GPUS_PER_NODE={seen} (launch.gpus_per_node={seen})")
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": str(gpus), "NNODES": str(nnodes), "NODE_RANK": str(launch.node_rank)}
    if nnodes > 1:  # one rendezvous for every node; a single node lets LLaMA-Factory pick a free port
        env.update({"MASTER_ADDR": str(launch.master_addr), "MASTER_PORT": str(launch.master_port)})
    return env


def refuse_on_other_ranks(cfg: DictConfig, stage: str) -> None:
    """On rank > 0 only the torchrun stages may run (as workers of rank 0's launch); following is for them only."""
    check_node_rank(cfg)
    if node_rank(cfg) == 0:
        if stage == "follow":  # a second rank 0 would wait for its own tickets, or start torchrun as node 0 twice
            raise LaunchError(f"stage=follow joins rank 0's torchrun stages from another node: give this node its "
                              f"rank (NODE_RANK=1..{max(int(cfg.launch.nnodes), 2) - 1}, launch.node_rank) and "
                              "launch.nnodes > 1 (NNODES)")
        return
    hint = (f"On node rank {node_rank(cfg)} run only the distributed stages, as workers of rank 0: "
            "`stage=follow` joins every torchrun stage rank 0 launches (stage1, stage2); GRPO's other nodes "
            "are Ray workers (`make ray-worker RAY_HEAD=<head>:6379`). scripts/slurm/train_multinode.sbatch does "
            "both for you.")
    if stage == "all":
        raise LaunchError(f"stage=all runs the chain, and only node rank 0 runs the chain (data, teacher, "
                          f"GRPO driver, merge, eval would otherwise run once per node). {hint}")
    if stage not in DISTRIBUTED_SFT and stage not in ("check", "follow"):
        raise LaunchError(f"stage {stage} runs on node rank 0 only. {hint}")


# -------------------------------------------------------------------------- tickets (several nodes)


def write_probe(cfg: DictConfig) -> Path:
    """A file only this run's rank 0 could have written, for other nodes to read back."""
    path = launch_dir(cfg) / "shared-probe"
    write_json(path, {"host": socket.gethostname(), "token": uuid.uuid4().hex})
    return path


def launch_dir(cfg: DictConfig) -> Path:
    return run_path(cfg, "launch")


def ticket_path(cfg: DictConfig, stage: str) -> Path:
    return launch_dir(cfg) / f"{stage}.ticket.json"


def ack_path(cfg: DictConfig, stage: str, attempt: str, rank: int) -> Path:
    """Node ``rank``'s acknowledgement of rank 0's ticket ``attempt`` for ``stage``."""
    return launch_dir(cfg) / f"{stage}.{attempt}.node{rank}.ack"


class Ticket:
    """Rank 0's announcement of a torchrun stage; a heartbeat counter tells a live ticket from a stale one."""

    def __init__(self, cfg: DictConfig, stage: str, config_path: Path | None, action: str = "launch"):
        self.cfg, self.stage, self.path = cfg, stage, ticket_path(cfg, stage)
        self.payload = {
            "stage": stage, "action": action, "attempt": uuid.uuid4().hex, "host": socket.gethostname(),
            "nnodes": int(cfg.launch.nnodes), "master_addr": str(cfg.launch.master_addr),
            "master_port": int(cfg.launch.master_port), "config": str(config_path) if config_path else None,
            "config_sha256": sha256_of(config_path) if config_path else None, "heartbeat": 0,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.beat()

    def beat(self) -> None:
        self.payload["heartbeat"] += 1
        write_json(self.path, self.payload)

    def ack_path(self, rank: int) -> Path:
        return ack_path(self.cfg, self.stage, self.payload["attempt"], rank)

    def wait_for_acks(self, timeout_s: float) -> None:
        """Every other rank must have seen this ticket (shared run folder) before torchrun starts."""
        others = range(1, int(self.cfg.launch.nnodes))
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [rank for rank in others if not self.ack_path(rank).exists()]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"{self.stage}: node ranks {missing} did not acknowledge {self.path} within {timeout_s:.0f} s. "
                    f"Start `stage=follow launch.node_rank=<rank>` (or `stage={self.stage}`) on them with the same "
                    f"run_dir; a shared filesystem is required: every node must see "
                    f"{launch_dir(self.cfg)} (LLaMA-Factory saves on rank 0, EasyR1 reads images by absolute path "
                    "on every node)")
            time.sleep(TICKET_HEARTBEAT_S)
            self.beat()

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        for ack in launch_dir(self.cfg).glob(f"{self.stage}.{self.payload['attempt']}.node*.ack"):
            ack.unlink(missing_ok=True)


def announce_stop(cfg: DictConfig, reason: str, timeout_s: float = 120.0) -> None:
    """Rank 0 stopped: tell the followers (waiting on any torchrun stage) to stop too, instead of waiting
    for a launch that will not come. Best effort: a follower that is not there is not waited for long."""
    tickets = [Ticket(cfg, stage, None, action="stop") for stage in DISTRIBUTED_SFT]
    for ticket in tickets:
        ticket.payload["reason"] = reason[:2000]
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            told = {rank for ticket in tickets for rank in range(1, int(cfg.launch.nnodes)) if ticket.ack_path(rank).exists()}
            if len(told) >= int(cfg.launch.nnodes) - 1:
                return
            for ticket in tickets:
                ticket.beat()
            time.sleep(TICKET_HEARTBEAT_S)
    finally:
        for ticket in tickets:
            ticket.close()


def wait_for_ticket(cfg: DictConfig, stages: tuple[str, ...], timeout_s: float) -> dict:
    """The first live ticket of rank 0 for one of ``stages`` (its heartbeat moves: a ticket left by a
    crashed run does not), acknowledged so that rank 0 knows this node sees the run folder."""
    deadline, last = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        for stage in stages:
            try:
                ticket = json.loads(ticket_path(cfg, stage).read_text())
            except (FileNotFoundError, json.JSONDecodeError):  # not there yet, or being replaced
                continue
            previous = last.get(ticket["attempt"])
            if previous is not None and ticket["heartbeat"] != previous:  # rank 0 is alive and waiting
                ack = ack_path(cfg, ticket["stage"], ticket["attempt"], node_rank(cfg))
                write_json(ack, {"host": socket.gethostname(), "pid": os.getpid()})
                return ticket
            last[ticket["attempt"]] = ticket["heartbeat"]
        time.sleep(TICKET_HEARTBEAT_S)
    raise LaunchError(
        f"node rank {node_rank(cfg)}: no live ticket of rank 0 for {' or '.join(stages)} in {launch_dir(cfg)} after "
        f"{timeout_s:.0f} s. Is rank 0 running the chain with the same run_dir, and is that folder on a filesystem "
        "every node shares? (required: LLaMA-Factory saves on rank 0, EasyR1 reads images by absolute path on "
        "every node)")


def check_ticket(cfg: DictConfig, ticket: dict) -> Path:
    """The config rank 0 launched, as this node sees it: the same bytes, the same node count."""
    if ticket["nnodes"] != int(cfg.launch.nnodes):
        raise LaunchError(f"rank 0 launched {ticket['stage']} for {ticket['nnodes']} nodes, this node has "
                          f"launch.nnodes={cfg.launch.nnodes}")
    config = Path(ticket["config"])
    if not config.exists() or sha256_of(config) != ticket["config_sha256"]:
        raise LaunchError(f"{config} (rank 0's rendered config) is missing or differs on this node: the run "
                          "folder must be one shared filesystem, not a copy per node")
    return config


# ------------------------------------------------------------------------------- moving outputs aside


def move_aside(path: Path, run_dir: Path, why: str, name: str | None = None) -> Path | None:
    """Rename a stage's old output to ``<run_dir>/replaced/<name>-<UTC time>`` (``name``: the path's
    own by default; never reused, never deleted by us: the user decides when to free the disk)."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    stamp, name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), name or path.name
    target = run_dir / "replaced" / f"{name}-{stamp}"
    suffix = 1
    while target.exists():
        target = run_dir / "replaced" / f"{name}-{stamp}-{suffix}"
        suffix += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except OSError:  # another filesystem: fall back to a copy-free move where possible
        shutil.move(str(path), str(target))
    print(f"[training.run] {why}: moved {path} aside to {target} (delete it to free the disk)", flush=True)
    return target


def preserve_logs(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Keep earlier attempts' logs that a trainer truncates when it starts again (EasyR1's FileLogger
    opens experiment_log.jsonl and generations.log with mode "w"): ``name`` -> ``name.attempt-<n>``."""
    kept = []
    for name in names:
        path = folder / name
        if not path.exists() or path.stat().st_size == 0:
            continue
        stem, dot, ext = name.partition(".")
        attempt = 1
        while (folder / f"{stem}.attempt-{attempt}{dot}{ext}").exists():
            attempt += 1
        target = folder / f"{stem}.attempt-{attempt}{dot}{ext}"
        os.replace(path, target)
        kept.append(target)
    return kept
