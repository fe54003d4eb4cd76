"""The GPU launch path on a simulated node (fake device counts, fake torchrun / EasyR1 / Ray / vLLM that
record what they were given; LLaMA-Factory's real launcher and parser)."""

import json
import subprocess
import sys
import threading

import pytest

from tests.training.simulated_node import FAKES, ROOT, SimulatedNode
from training import launch
from training.llamafactory_parser import close_shared


@pytest.fixture
def node_factory(tmp_path, monkeypatch):
    close_shared()

    def make(gpus: int, real_launcher: bool = True) -> SimulatedNode:
        node = SimulatedNode(tmp_path, gpus, real_launcher)
        node.activate(monkeypatch)
        return node

    yield make
    close_shared()


def run_stage(compose_run, run_dir, *overrides):
    from training.run import run

    run(compose_run("default", f"run_dir={run_dir}", *overrides))


PARSE_UNDER_8_GPUS = r"""
import json, sys
from hydra import compose, initialize_config_dir
from training import check
from training.render import ROOT, render
with initialize_config_dir(config_dir=str(ROOT / "recipes" / "run"), version_base="1.3"):
    cfg = compose(config_name="default", overrides=[f"run_dir={sys.argv[1]}"])
configs = {stage: render(cfg, stage)[0] for stage in ("stage1", "stage2")}
result = {stage: check.sft_problems(config, cfg.frame, {str(cfg.run_dir) + "/stage1"}) for stage, config in configs.items()}
result["torch_in_launcher"] = "torch" in sys.modules
import os
result["contexts_during_check"] = open(os.environ["FAKE_NODE_LOG"]).read().count("cuda_context")
import torch
result["fake_gpus_seen"] = torch.cuda.device_count()
from llamafactory.hparams import get_train_args  # the old way: in this process, GPUs visible
try:
    get_train_args({**configs["stage1"], "bf16": False, "deepspeed": None, "output_dir": sys.argv[1] + "/x"})
    result["old_way"] = "passed"
except ValueError as error:
    result["old_way"] = str(error)
print(json.dumps(result))
"""


def test_llamafactory_parser_passes_under_8_fake_gpus_where_the_old_path_refused(node_factory, tmp_path):
    node = node_factory(8)
    result = subprocess.run([str(node.python), "-c", PARSE_UNDER_8_GPUS, str(tmp_path / "run")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["stage1"] == [] and found["stage2"] == []
    assert found["fake_gpus_seen"] == 8
    assert "Please launch distributed training" in found["old_way"]
    assert found["torch_in_launcher"] is False  # the launcher never imported torch for the check
    assert found["contexts_during_check"] == 0  # neither the launcher nor the parser child touched CUDA
    assert {e["call"] for e in node.events("cuda_context")} == {"set_device"}  # the old way did, in the launcher


@pytest.mark.parametrize("gpus, nproc", [(1, "1"), (8, "8")])
def test_sft_launches_through_torchrun_with_every_gpu_and_wandb_offline(node_factory, compose_run, tmp_path,
                                                                      gpus, nproc):
    node = node_factory(gpus)
    run_stage(compose_run, tmp_path / "run", "stage=stage1", f"launch.gpus_per_node={gpus}")
    [call] = node.events("torchrun")
    assert call["env"]["FORCE_TORCHRUN"] == "1" and call["env"]["NPROC_PER_NODE"] == nproc
    assert call["env"]["WANDB_MODE"] == "offline" and call["env"]["NNODES"] == "1"
    assert call["env"]["WANDB_DIR"] == str(tmp_path / "run" / "logs")  # offline runs beside the run, not in ./wandb
    argv = " ".join(call["argv"])
    assert f"--nnodes 1 --node_rank 0 --nproc_per_node {nproc}" in argv and argv.endswith("configs/stage1.yaml")
    assert call["config"]["overwrite_output_dir"] is False and call["config"]["save_total_limit"] == 2
    # the launcher process itself never created a CUDA context (the parser child sees no GPU)
    assert not node.events("cuda_context")


def test_the_users_wandb_mode_wins(node_factory, compose_run, tmp_path, monkeypatch):
    from training import check

    monkeypatch.setattr(check, "sft_problems", lambda *args, **kwargs: [])  # parsed for real elsewhere
    node = node_factory(8, real_launcher=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "mine"))
    run_stage(compose_run, tmp_path / "run", "stage=stage1")
    assert node.events("torchrun")[0]["env"]["WANDB_MODE"] == "online"
    assert node.events("torchrun")[0]["env"]["WANDB_DIR"] == str(tmp_path / "mine")


def test_two_nodes_rank0_launches_only_when_rank1_sees_the_run_folder(node_factory, compose_run, tmp_path,
                                                                    monkeypatch):
    from training import check

    monkeypatch.setattr(check, "sft_problems", lambda *args, **kwargs: [])  # parsed for real elsewhere
    node = node_factory(8)  # LLaMA-Factory's real launcher builds every torchrun command
    common = ("launch.nnodes=2", "launch.master_addr=10.0.0.1", "launch.master_port=29555",
              "launch.ack_timeout_s=120", "launch.follow_timeout_s=120")
    errors = []
    follower_cfg = compose_run("default", f"run_dir={tmp_path / 'run'}", "stage=follow", "launch.node_rank=1", *common)

    def follower():
        from training.run import run

        try:
            run(follower_cfg)
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=follower)
    thread.start()
    run_stage(compose_run, tmp_path / "run", "stage=stage1", *common)
    run_stage(compose_run, tmp_path / "run", "stage=stage2", *common)
    thread.join(timeout=300)
    assert not errors, errors
    calls = node.events("torchrun")
    assert sorted((c["config"]["output_dir"][-6:], c["env"]["NODE_RANK"]) for c in calls) == [
        ("stage1", "0"), ("stage1", "1"), ("stage2", "0"), ("stage2", "1")]
    for call in calls:
        assert call["env"]["NNODES"] == "2" and call["env"]["MASTER_ADDR"] == "10.0.0.1"
        assert call["env"]["MASTER_PORT"] == "29555" and call["env"]["NPROC_PER_NODE"] == "8"
        assert "--nnodes 2" in " ".join(call["argv"])
    assert not list((tmp_path / "run" / "launch").glob("*.ticket.json"))  # closed after each stage


def test_rank0_stops_naming_the_shared_filesystem_when_no_other_rank_answers(node_factory, compose_run, tmp_path,
                                                                           monkeypatch):
    from training import check
    from training.run import StageFailed

    monkeypatch.setattr(check, "sft_problems", lambda *args, **kwargs: [])  # parsed for real elsewhere
    node = node_factory(8, real_launcher=False)
    with pytest.raises(StageFailed, match="did not acknowledge.*shared filesystem is required"):
        run_stage(compose_run, tmp_path / "run", "stage=stage1", "launch.nnodes=2", "launch.ack_timeout_s=2")
    assert not node.events("torchrun")  # nothing was launched


@pytest.mark.parametrize("stage", ["all", "data", "cold_start", "stage3", "eval"])
def test_other_ranks_refuse_the_chain_and_rank0_stages(compose_run, tmp_path, stage):
    from training.run import StageFailed

    with pytest.raises(StageFailed, match="rank 0"):
        run_stage(compose_run, tmp_path / "run", f"stage={stage}", "launch.nnodes=2", "launch.node_rank=1")


@pytest.mark.parametrize("nodes", [["launch.nnodes=2"], []])
def test_follow_on_rank0_is_refused_instead_of_waiting_for_its_own_tickets(compose_run, tmp_path, nodes):
    """`make follow` without NODE_RANK: rank 0 would wait two days for a ticket, or join as a second node 0."""
    from training.run import StageFailed

    with pytest.raises(StageFailed, match="stage=follow.*NODE_RANK=1"):
        run_stage(compose_run, tmp_path / "run", "stage=follow", "launch.follow_timeout_s=3", *nodes)
    with pytest.raises(StageFailed, match="node_rank=1 is not in 0..0"):  # a follower of a one-node run
        run_stage(compose_run, tmp_path / "run", "stage=follow", "launch.follow_timeout_s=3", "launch.node_rank=1")


def test_a_follower_ignores_a_stale_ticket(compose_run, tmp_path):
    cfg = compose_run("default", f"run_dir={tmp_path}", "launch.nnodes=2", "launch.node_rank=1")
    stale = launch.ticket_path(cfg, "stage1")
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"stage": "stage1", "attempt": "old", "heartbeat": 7, "action": "launch"}))
    with pytest.raises(launch.LaunchError, match="no live ticket"):
        launch.wait_for_ticket(cfg, ("stage1",), timeout_s=3)


def test_a_crashed_sft_stage_resumes_and_force_starts_fresh(node_factory, compose_run, tmp_path, monkeypatch):
    from training import check
    from training.run import StageFailed

    monkeypatch.setattr(check, "sft_problems", lambda *args, **kwargs: [])  # parsed for real elsewhere
    node = node_factory(8, real_launcher=False)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("FAKE_CRASH_AFTER_STEP", "500")
    with pytest.raises(StageFailed, match="stage stage1 failed"):
        run_stage(compose_run, run_dir, "stage=stage1")
    monkeypatch.delenv("FAKE_CRASH_AFTER_STEP")
    run_stage(compose_run, run_dir, "stage=stage1")
    assert node.events("sft_start")[-1]["resume_from"] == ["checkpoint-500"]
    log = (run_dir / "logs" / "stage1.log").read_text()
    assert log.count("===== ") == 2  # the crashed attempt's log is kept

    # a changed setting never resumes into the old output: it stops, saying what changed
    monkeypatch.setenv("FAKE_CRASH_AFTER_STEP", "500")
    with pytest.raises(StageFailed):
        run_stage(compose_run, run_dir, "stage=stage1", "force=true")
    monkeypatch.delenv("FAKE_CRASH_AFTER_STEP")
    with pytest.raises(StageFailed, match=r"other inputs.*config\.learning_rate: 1e-05 -> 2e-05.*force=true"):
        run_stage(compose_run, run_dir, "stage=stage1", "+overrides.stage1.learning_rate=2.0e-5")
    node.clear()
    run_stage(compose_run, run_dir, "stage=stage1", "force=true", "+overrides.stage1.learning_rate=2.0e-5")
    assert node.events("sft_start")[-1]["resume_from"] == []
    assert len(list((run_dir / "replaced").glob("stage1-*"))) == 2  # moved aside, never deleted or reused


def test_a_checkpoint_cut_short_while_saving_is_set_aside_and_the_stage_resumes_from_the_one_before(
        node_factory, compose_run, tmp_path, monkeypatch):
    """transformers reads trainer_state.json (written last) first when resuming: a checkpoint without it
    would crash every resume; it is moved aside, not deleted."""
    from training import check
    from training.run import StageFailed

    monkeypatch.setattr(check, "sft_problems", lambda *args, **kwargs: [])
    node = node_factory(8, real_launcher=False)
    run_dir, stage1 = tmp_path / "run", tmp_path / "stage1-elsewhere"
    stage1.mkdir()
    (stage1 / "config.json").write_text("{}")
    monkeypatch.setenv("FAKE_CRASH_AFTER_STEP", "500")
    monkeypatch.setenv("FAKE_CUT_SHORT_AT_STEP", "1000")
    with pytest.raises(StageFailed, match="stage stage2 failed"):
        run_stage(compose_run, run_dir, "stage=stage2", f"handover.stage1_dir={stage1}")
    (run_dir / "stage2" / "checkpoint-1500").mkdir()  # killed right after creating the folder
    monkeypatch.delenv("FAKE_CRASH_AFTER_STEP")
    monkeypatch.delenv("FAKE_CUT_SHORT_AT_STEP")
    run_stage(compose_run, run_dir, "stage=stage2", f"handover.stage1_dir={stage1}")
    assert node.events("sft_start")[-1]["resume_from"] == ["checkpoint-500"]
    kept = list((run_dir / "replaced").glob("stage2-checkpoint-1000-*"))
    assert len(kept) == 1 and (kept[0] / "model.safetensors").read_bytes() == b"partial"


def test_grpo_resumes_keeps_easyr1_logs_force_starts_clean_and_ray_workers_get_wandb_offline(
        node_factory, compose_run, tmp_path, monkeypatch):
    from training.run import StageFailed

    import pyarrow as pa
    import pyarrow.parquet as pq

    node = node_factory(8)
    run_dir = tmp_path / "run"
    (run_dir / "stage2").mkdir(parents=True)
    (run_dir / "data" / "grpo").mkdir(parents=True)  # the recipe check wants its data files (not read here)
    for split in ("train", "val"):
        pq.write_table(pa.table({"prompt": ["<image>Is there a nodule?"], "images": [["x.jpg"]], "answer": ["{}"]}),
                       run_dir / "data" / "grpo" / f"{split}.parquet")
    checkout = tmp_path / "EasyR1"  # the merger stage 3 makes sure of before it starts (no download in tests)
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "scripts" / "model_merger.py").write_text("")
    merger = f"launch.easyr1_dir={checkout}"
    monkeypatch.setenv("FAKE_CRASH_AT_STEP", "10")
    with pytest.raises(StageFailed, match="stage stage3 failed"):
        run_stage(compose_run, run_dir, "stage=stage3", merger)
    monkeypatch.delenv("FAKE_CRASH_AT_STEP")
    [ray_init] = node.events("ray_init")[-1:]
    env_vars = ray_init["runtime_env"]["env_vars"]
    assert env_vars["WANDB_MODE"] == "offline" and env_vars["TOKENIZERS_PARALLELISM"] == "true"  # EasyR1's kept
    assert env_vars["WANDB_DIR"] == str(run_dir / "logs")  # the Runner actor's wandb logger, on any node
    assert node.events("easyr1")[-1]["argv"][1].startswith("config=")

    run_stage(compose_run, run_dir, "stage=stage3", merger)
    assert node.events("easyr1")[-1]["resume_from"] == 5
    out = run_dir / "stage3"
    assert len((out / "experiment_log.attempt-1.jsonl").read_text().splitlines()) == 2  # not truncated
    assert json.loads((out / "checkpoint_tracker.json").read_text())["last_global_step"] == 15

    run_stage(compose_run, run_dir, "stage=stage3", merger, "force=true")
    assert node.events("easyr1")[-1]["resume_from"] is None  # EasyR1 found no old checkpoint to skip to
    assert json.loads((out / "checkpoint_tracker.json").read_text())["last_global_step"] == 10
    assert list((run_dir / "replaced").glob("stage3-*/global_step_15"))


def test_merge_takes_easyr1s_best_checkpoint_and_says_so(compose_run, tmp_path):
    from omegaconf import OmegaConf

    from training.run import checkpoint_to_merge, easyr1_merger

    cfg = compose_run("default", f"run_dir={tmp_path}")
    out = tmp_path / "stage3"
    for step in (5, 10, 15):
        (out / f"global_step_{step}" / "actor").mkdir(parents=True)
    (out / "checkpoint_tracker.json").write_text(json.dumps(
        {"best_global_step": 10, "best_val_reward_score": 1.21, "last_global_step": 15}))
    chosen, why = checkpoint_to_merge(cfg)
    assert chosen.name == "global_step_10" and "best by validation reward" in why and "1.21" in why
    last, why = checkpoint_to_merge(compose_run("default", f"run_dir={tmp_path}", "merge.checkpoint=last"))
    assert last.name == "global_step_15" and "last" in why
    (out / "global_step_10").rename(out / "gone")
    chosen, why = checkpoint_to_merge(cfg)
    assert chosen.name == "global_step_15" and "no longer on disk" in why
    vendored = ROOT.parent / "shared" / "vendor" / "easyr1-b44b311"
    if not vendored.exists():
        pytest.skip("the pinned EasyR1 sources are not beside the repository")
    assert easyr1_merger(OmegaConf.create({"launch": {"easyr1_dir": None}}), download=False).name == "model_merger.py"


def test_easyr1_launcher_refuses_ray_nodes_that_do_not_share_the_run_folder(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_ray", FAKES / "ray" / "__init__.py",
                                                  submodule_search_locations=[str(FAKES / "ray")])
    fake_ray = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake_ray)
    strategies_spec = importlib.util.spec_from_file_location("fake_strategies",
                                                             FAKES / "ray" / "util" / "scheduling_strategies.py")
    strategies = importlib.util.module_from_spec(strategies_spec)
    strategies_spec.loader.exec_module(strategies)
    monkeypatch.setitem(sys.modules, "ray", fake_ray)  # also when the real Ray was imported by another test
    monkeypatch.setitem(sys.modules, "ray.util.scheduling_strategies", strategies)
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("FAKE_NODE_LOG", str(tmp_path / "log.jsonl"))
    probe = tmp_path / "probe"
    probe.write_text("token")
    monkeypatch.setenv("DEEPMEDIX_SHARED_PROBE", str(probe))
    monkeypatch.setenv("DEEPMEDIX_RAY_ENV", "WANDB_MODE,WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "secret")
    from training import easyr1_launch

    easyr1_launch.install(fake_ray)
    fake_ray.init(runtime_env={"env_vars": {"NCCL_DEBUG": "WARN"}})  # both nodes see it
    recorded = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["runtime_env"]["env_vars"]
    assert recorded == {"WANDB_MODE": "offline", "NCCL_DEBUG": "WARN"}  # never the key
    monkeypatch.setenv("FAKE_RAY_BLIND_NODE", "1")
    easyr1_launch.install(fake_ray)
    with pytest.raises(SystemExit, match=r"\['10.0.0.2'\] do not see .*shared by every node"):
        fake_ray.init()


def test_the_cold_start_stage_runs_while_its_teacher_is_served(node_factory, compose_run, tmp_path, monkeypatch):
    import socket

    import training.run as run_module
    from data_prep.endpoint import EndpointConfig, EndpointUnavailable, preflight

    node = node_factory(8)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    seen = []
    monkeypatch.setattr(run_module, "synthesize_traces",
                        lambda cfg: seen.append(preflight(EndpointConfig(base_url=url, model="big-teacher"))) or {})
    cfg = compose_run("default", f"run_dir={tmp_path / 'run'}", "cold_start.serve.enabled=true",
                      "cold_start.serve.gpus='0,1'", "cold_start.serve.startup_timeout_s=60",
                      f"cold_start.overrides=['teacher.base_url={url}','teacher.model=big-teacher']")
    run_module.stage_cold_start(cfg)
    assert seen == [["big-teacher"]]
    assert node.events("vllm")[0]["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    with pytest.raises(EndpointUnavailable):
        preflight(EndpointConfig(base_url=url, model="big-teacher"))  # stopped again: the GPUs are free for stage 2


def test_the_model_merger_is_fetched_at_the_pinned_commit_and_checked(tmp_path, monkeypatch):
    import io
    import urllib.request

    from omegaconf import OmegaConf

    import training.run as run_module

    vendored = ROOT.parent / "shared" / "vendor" / "easyr1-b44b311" / "scripts" / "model_merger.py"
    if not vendored.exists():
        pytest.skip("the pinned EasyR1 sources are not beside the repository")
    monkeypatch.setattr(run_module, "ROOT", tmp_path / "repo")  # no checkout, no vendored copy, empty cache
    cfg = OmegaConf.create({"launch": {"easyr1_dir": None}})
    asked = []

    def serve(body):
        def urlopen(url, timeout):
            asked.append(url)
            if body is None:
                raise OSError("Network is unreachable")
            return io.BytesIO(body)
        return urlopen

    monkeypatch.setattr(urllib.request, "urlopen", serve(None))
    with pytest.raises(run_module.StageFailed, match="make easyr1-merger.*launch.easyr1_dir"):
        run_module.easyr1_merger(cfg)
    monkeypatch.setattr(urllib.request, "urlopen", serve(b"print('not the merger')\n"))
    with pytest.raises(run_module.StageFailed, match="pinned sha256"):
        run_module.easyr1_merger(cfg)
    monkeypatch.setattr(urllib.request, "urlopen", serve(vendored.read_bytes()))
    merger = run_module.easyr1_merger(cfg)
    assert merger.read_bytes() == vendored.read_bytes() and merger.is_relative_to(tmp_path / "repo" / ".cache")
    assert asked[-1] == run_module.EASYR1_MERGER_URL and run_module.EASYR1_COMMIT in asked[-1]
    assert run_module.easyr1_merger(cfg) == merger and len(asked) == 3  # fetched once


def test_grpo_does_not_start_when_the_merger_cannot_be_had(node_factory, compose_run, tmp_path, monkeypatch):
    """A GPU node without internet: the merger is fetched before GRPO, and its failure stops the chain
    before days of training, not at the merge stage after them."""
    import urllib.request

    import pyarrow as pa
    import pyarrow.parquet as pq

    import training.run as run_module

    node = node_factory(8)
    run_dir = tmp_path / "run"
    (run_dir / "stage2").mkdir(parents=True)
    (run_dir / "data" / "grpo").mkdir(parents=True)
    for split in ("train", "val"):
        pq.write_table(pa.table({"prompt": ["<image>Is there a nodule?"], "images": [["x.jpg"]], "answer": ["{}"]}),
                       run_dir / "data" / "grpo" / f"{split}.parquet")
    monkeypatch.setattr(run_module, "EASYR1_MERGER_SHA256", "0" * 64)  # no local copy matches: it must be fetched

    def unreachable(url, timeout):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(run_module.StageFailed, match="stage3 not started.*make easyr1-merger"):
        run_stage(compose_run, run_dir, "stage=stage3")
    assert node.events("easyr1") == []
    (run_dir / "stage3").mkdir()
    (run_dir / "stage3" / "checkpoint_tracker.json").write_text("{}")
    with pytest.raises(run_module.StageFailed, match="stage3 not started"):
        run_stage(compose_run, run_dir, "stage=stage3", "force=true")
    assert (run_dir / "stage3" / "checkpoint_tracker.json").exists()  # refused before moving the old run aside


def test_more_processes_than_visible_gpus_is_refused_before_launch(compose_run, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    cfg = compose_run("default", f"run_dir={tmp_path}")
    with pytest.raises(launch.LaunchError, match="gpus_per_node=8 but this node shows 4 GPU"):
        launch.llamafactory_env(cfg, deepspeed=True)
    four = compose_run("default", f"run_dir={tmp_path}", "launch.gpus_per_node=4")
    assert launch.llamafactory_env(four, deepspeed=True)["NPROC_PER_NODE"] == "4"
    cpu = compose_run("demo", f"run_dir={tmp_path}")  # one plain process: no torchrun, nothing to count
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert launch.llamafactory_env(cpu, deepspeed=False) == {}


def test_followers_stop_when_rank0_stops(compose_run, tmp_path):
    from training.run import StageFailed, run

    common = ("launch.nnodes=2", "launch.follow_timeout_s=120")
    follower_cfg = compose_run("default", f"run_dir={tmp_path}", "stage=follow", "launch.node_rank=1", *common)
    errors = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(StageFailed, run, follower_cfg)))
    thread.start()
    with pytest.raises(StageFailed, match="needs data_root"):
        run(compose_run("default", f"run_dir={tmp_path}", "stage=all", *common))  # no data_root: data fails
    thread.join(timeout=120)
    assert errors and "rank 0 stopped the chain: stage data needs data_root" in str(errors[0].value)
    assert not list((tmp_path / "launch").glob("*.ticket.json"))


def test_a_failed_rank0_only_stage_does_not_wait_for_followers_it_never_had(compose_run, tmp_path, monkeypatch):
    """`make stage3 NNODES=2` by hand (Ray workers, no torchrun followers): a failure is reported at once,
    not after waiting for followers to acknowledge a stop."""
    from training.run import StageFailed

    announced = []
    monkeypatch.setattr(launch, "announce_stop", lambda cfg, reason, timeout_s: announced.append(reason))
    with pytest.raises(StageFailed, match="needs data_root"):
        run_stage(compose_run, tmp_path / "run", "stage=data", "launch.nnodes=2")
    assert announced == []
    with pytest.raises(StageFailed, match="needs data_root"):
        run_stage(compose_run, tmp_path / "run", "stage=all", "launch.nnodes=2")
    assert len(announced) == 1  # the chain's followers wait for stage 1 and 2: told
