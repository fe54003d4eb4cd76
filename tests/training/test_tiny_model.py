"""The tiny Qwen2.5-VL starts at a weight scale it can learn from in the demo's minutes."""

import pytest


@pytest.mark.slow
def test_weights_start_at_the_tiny_models_initializer_range(tmp_path):
    from safetensors.torch import load_file

    from training import tiny_model

    tiny_model.build(tmp_path, seed=0)
    weights = load_file(tmp_path / "model.safetensors")
    for name in ("patch_embed.proj.weight", "layers.0.self_attn.q_proj.weight", "embed_tokens.weight"):
        matching = [key for key in weights if key.endswith(name)]
        assert matching, (name, list(weights)[:5])
        std = weights[matching[0]].float().std().item()
        assert abs(std - tiny_model.INITIALIZER_RANGE) < 0.01, (name, std)  # Qwen's 0.02 left it at the prior
