"""Response-length budgets along the chain: what evaluation allows is never less than what GRPO
trained with, which is never less than the cold-start traces the policy learnt the format from."""

from omegaconf import OmegaConf

from training.render import ROOT


def test_evaluation_never_truncates_a_response_training_allowed():
    teacher = OmegaConf.load(ROOT / "recipes" / "data" / "cold_start.yaml").teacher.max_tokens
    grpo = OmegaConf.load(ROOT / "recipes" / "qwen2_5_vl_7b" / "stage3_grpo.yaml").data.max_response_length
    evaluation = OmegaConf.load(ROOT / "recipes" / "eval" / "xraybench.yaml").sampling.max_new_tokens
    assert teacher <= grpo <= evaluation
    assert evaluation == 4096  # the third-party evaluation of the released model (declared in the README)
