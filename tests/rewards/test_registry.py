import pytest

from rewards.frame import Frame
from rewards.ground_truth import GroundTruth
from rewards.registry import (
    REWARD_COMPONENTS,
    RewardResolutionError,
    register_component,
    resolve_component,
    resolve_reward_function,
)

TRUTH = GroundTruth("closed", "yes", Frame(448, 448))


def test_builtin_names_resolve():
    from rewards.deepmedix import compute_score

    assert resolve_reward_function("deepmedix_r1") is compute_score
    assert {"answer", "format", "coordinate", "grounding"} <= set(REWARD_COMPONENTS)
    assert resolve_component("format")("<think>r</think>\\boxed{yes}", TRUTH) == 1.0
    assert resolve_component("answer")("<think>r</think>\\boxed{Yes}", TRUTH) == 1.0


def test_module_spec_resolves():
    assert resolve_reward_function("rewards.deepmedix:compute_score").__name__ == "compute_score"


def test_file_spec_resolves_with_easyr1_default_function(tmp_path):
    reward_file = tmp_path / "my_reward.py"
    reward_file.write_text("def main(reward_inputs, **kw):\n    return [{'overall': 1.0}]\n"
                           "def brevity(response, truth):\n    return 1.0 / (1 + len(response))\n")
    assert resolve_reward_function(str(reward_file))([{}]) == [{"overall": 1.0}]
    assert resolve_component(f"{reward_file}:brevity")("abc", TRUTH) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown reward function 'nope'"),
        ("rewards.deepmedix:nope", "has no function 'nope'"),
        ("no_such_pkg.mod:fn", "cannot import module"),
        ("/does/not/exist.py:fn", "does not exist"),
    ],
)
def test_unresolvable_specs_are_clear_errors(spec, message):
    with pytest.raises(RewardResolutionError, match=message):
        resolve_reward_function(spec)


def test_file_that_fails_to_import_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_dependency\n")
    with pytest.raises(RewardResolutionError, match="importing reward file .* failed"):
        resolve_component(f"{broken}:fn")


def test_register_component_refuses_to_shadow():
    @register_component("test_length")
    def length(response, truth):
        return float(len(response))

    assert resolve_component("test_length") is length
    with pytest.raises(ValueError, match="already registered"):
        register_component("test_length")(lambda response, truth: 0.0)
    del REWARD_COMPONENTS["test_length"]
