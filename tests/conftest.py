"""Session-wide defaults: tests never reach the network, whatever the caller's environment."""

import os

for _name, _value in {
    "WANDB_MODE": "offline",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}.items():
    os.environ[_name] = _value
