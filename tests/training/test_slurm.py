"""scripts/slurm/train_multinode.sbatch on a simulated 2 x 8 GPU allocation: fake srun / scontrol / ray /
python record what each node would run."""

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_SRUN = r"""#!/bin/bash
# fake srun: run the command once per node of the step (-w NODE or --nodes=N), with SLURM_NODEID set
nodes=(); count=1
while [[ "$1" == -* ]]; do
  case "$1" in
    -w) nodes=("$2"); shift 2;;
    --nodes=*) count=${1#--nodes=}; shift;;
    *) shift;;
  esac
done
if [ ${#nodes[@]} -eq 0 ]; then for i in $(seq 0 $((count-1))); do nodes+=("gpu$i"); done; fi
for node in "${nodes[@]}"; do
  id=${node#gpu}
  SLURM_NODEID=$id FAKE_HOST=$node "$@"
done
"""

def fake_allocation(tmp_path, **extra_env):
    """Run the script on a fake 2-node allocation; its exit, its stderr and the recorded calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "scontrol").write_text("#!/bin/bash\nprintf 'gpu0\\ngpu1\\n'\n")
    (bin_dir / "hostname").write_text("#!/bin/bash\necho 10.0.0.$((${FAKE_HOST#gpu} + 1))\n")
    (bin_dir / "sleep").write_text("#!/bin/bash\ntrue\n")
    for tool in ("ray", "python"):
        (bin_dir / tool).write_text("#!/bin/bash\npython3 -c 'import json,sys,os; print(json.dumps(dict(tool=os.path."
                                    "basename(sys.argv[1]), host=os.environ.get(\"FAKE_HOST\"), wandb=os.environ.get("
                                    "\"WANDB_MODE\"), ray_address=os.environ.get(\"RAY_ADDRESS\"), argv=sys.argv[2:])))'"
                                    " \"$0\" \"$@\" >> \"$FAKE_LOG\"\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "log.jsonl"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log), "SLURM_JOB_NODELIST": "gpu[0-1]",
           "SLURM_SUBMIT_DIR": str(ROOT), "RUN_DIR": str(tmp_path / "run"), "DATA_ROOT": "/shared/releases",
           "CONDA_ENV": "", "HOME": os.environ.get("HOME", "/tmp"), **extra_env}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "slurm" / "train_multinode.sbatch")], env=env,
                            capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


# `conda shell.bash hook` as conda prints it, reduced to what matters: its activation reads variables
# that may be unset (as conda's and its packages' activate.d scripts do) and changes the environment.
FAKE_CONDA = r"""#!/bin/bash
cat <<'HOOK'
conda() {
  if [ "$1" = activate ]; then
    : "$SOME_UNSET_VARIABLE_OF_AN_ACTIVATE_SCRIPT"
    echo "{\"tool\": \"conda\", \"argv\": [\"activate\", \"$2\"]}" >> "$FAKE_LOG"
  fi
}
HOOK
"""


def test_slurm_script_starts_ray_and_runs_the_chain_on_rank0_and_followers_elsewhere(tmp_path):
    result, calls = fake_allocation(tmp_path)
    assert result.returncode == 0, result.stderr
    ray_starts = [c for c in calls if c["tool"] == "ray" and c["argv"][0] == "start"]
    assert sorted((c["host"], "--head" in c["argv"]) for c in ray_starts) == [("gpu0", True), ("gpu1", False)]
    worker = [c for c in ray_starts if c["host"] == "gpu1"][0]
    assert "--address=10.0.0.1:6379" in worker["argv"] and all(c["wandb"] == "offline" for c in ray_starts)
    chain = {c["host"]: c for c in calls if c["tool"] == "python"}
    assert "stage=all" in chain["gpu0"]["argv"] and "stage=follow" in chain["gpu1"]["argv"]
    for rank, host in enumerate(("gpu0", "gpu1")):
        argv = chain[host]["argv"]
        assert argv[:2] == ["-m", "training.run"] and f"launch.node_rank={rank}" in argv
        assert {"launch.nnodes=2", "launch.master_addr=10.0.0.1", "launch.gpus_per_node=8",
                "data_root=/shared/releases", f"run_dir={tmp_path / 'run'}"} <= set(argv)
        assert chain[host]["ray_address"] == "10.0.0.1:6379"
    assert [c["host"] for c in calls if c["tool"] == "ray" and c["argv"][0] == "stop"] == ["gpu0", "gpu1"]


def test_slurm_script_activates_the_conda_env_under_set_u_and_keeps_the_current_one_when_asked(tmp_path):
    """The script runs with ``set -u``: conda's activation scripts must not stop it (they read unset
    variables); ``CONDA_ENV=`` (empty) means: use the environment sbatch was submitted from."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "conda").write_text(FAKE_CONDA)
    (bin_dir / "conda").chmod(0o755)
    result, calls = fake_allocation(tmp_path, CONDA_ENV="deepmedix-r1")
    assert result.returncode == 0, result.stderr
    assert [c["argv"] for c in calls if c["tool"] == "conda"] == [["activate", "deepmedix-r1"]]
    assert any(c["tool"] == "python" for c in calls)

    second = tmp_path / "second"
    (second / "bin").mkdir(parents=True)
    (second / "bin" / "conda").write_text(FAKE_CONDA)
    (second / "bin" / "conda").chmod(0o755)
    result, calls = fake_allocation(second, CONDA_ENV="")
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c["tool"] == "conda"] and any(c["tool"] == "python" for c in calls)
