"""EasyR1's plug-in contract: imported by file path as `custom_reward_fn`, from any directory."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "rewards" / "easyr1_entry.py"

# What EasyR1's reward worker does, in a process where our package is NOT importable (editable
# finder and repository removed from the path) and the working directory is elsewhere.
LOAD_LIKE_EASYR1 = f"""
import importlib.util, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__ + repr(f)]
sys.path[:] = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
try:
    import rewards
    raise SystemExit("precondition failed: rewards is importable")
except ImportError:
    pass
spec = importlib.util.spec_from_file_location("custom_reward_fn", {str(ENTRY)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
fn = getattr(module, "compute_score")
inputs = [{{"response": "<think>[1,1,50,50]</think>\\\\boxed{{yes}}", "response_length": 9, "ground_truth": "yes"}}]
print(json.dumps({{"name": module.REWARD_NAME, "type": module.REWARD_TYPE,
                  "scores": fn(inputs, format_weight=0.2)}}))
"""


def test_loads_by_path_from_another_directory_without_the_package_installed(tmp_path):
    result = subprocess.run([sys.executable, "-c", LOAD_LIKE_EASYR1], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["name"] == "deepmedix_r1" and output["type"] == "batch"
    (scores,) = output["scores"]
    assert scores["overall"] == 0.8 * 1.5 + 0.2 * 1.0 + 0.05


def test_validate_reward_kwargs_is_exposed_for_recipe_checks():
    import importlib.util

    import pytest

    spec = importlib.util.spec_from_file_location("custom_reward_fn_test", ENTRY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.validate_reward_kwargs({"format_weight": 0.1, "preset": "paper"})
    with pytest.raises(ValueError, match="unknown reward kwargs"):
        module.validate_reward_kwargs({"reward_type": "batch"})
