"""EasyR1 entry file for the DeepMedix-R1 reward.

In an EasyR1 recipe::

    worker:
      reward:
        reward_function: ./rewards/easyr1_entry.py:compute_score
        reward_function_kwargs: {format_weight: 0.1, preset: paper}

EasyR1 imports this file by path, as a module named ``custom_reward_fn``, inside a Ray actor that
may run on another node and in another directory. So it imports our package absolutely, after
putting this repository on ``sys.path`` when the package is not installed there.
"""

import sys
from pathlib import Path

try:
    import rewards  # noqa: F401  (installed: `pip install -e .`, as environment.yml does)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.deepmedix import RewardConfig, compute_score  # noqa: E402

REWARD_NAME = "deepmedix_r1"
REWARD_TYPE = "batch"

__all__ = ["REWARD_NAME", "REWARD_TYPE", "compute_score", "validate_reward_kwargs"]


def validate_reward_kwargs(kwargs: dict) -> None:
    """Recipe validation calls this before launch: bad kwargs fail here, not inside a Ray actor."""
    RewardConfig.from_kwargs(kwargs)
