"""Serving the teacher with vLLM for the cold-start stage (a fake `vllm` on a simulated 8-GPU node)."""

import socket

import pytest

from data_prep.endpoint import EndpointConfig, EndpointUnavailable, preflight
from data_prep.serve_teacher import served_teacher
from tests.training.simulated_node import SimulatedNode


def free_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture
def node(tmp_path, monkeypatch):
    node = SimulatedNode(tmp_path, 8)
    node.activate(monkeypatch)
    return node


def test_the_teacher_is_served_on_the_chosen_gpus_and_stopped_afterwards(node):
    config = EndpointConfig(base_url=free_url(), model="Qwen/Qwen2.5-VL-72B-Instruct")
    with served_teacher(config, "4,5,6,7", ["--max-model-len", "16384"], startup_timeout_s=60, poll_s=0.2) as server:
        assert preflight(config) == ["Qwen/Qwen2.5-VL-72B-Instruct"]
    assert server.poll() is not None  # stopped
    with pytest.raises(EndpointUnavailable):
        preflight(config)
    [call] = node.events("vllm")
    assert call["env"]["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    assert call["argv"][:2] == ["serve", "Qwen/Qwen2.5-VL-72B-Instruct"]
    assert " ".join(call["argv"]).endswith("--tensor-parallel-size 4 --max-model-len 16384")


def test_a_server_that_dies_while_loading_is_reported(node, tmp_path):
    config = EndpointConfig(base_url=free_url(), model="m")
    with pytest.raises(EndpointUnavailable, match="vLLM exited with code"), served_teacher(
            config, "0", ["--unknown-flag-makes-it-crash"], startup_timeout_s=60, poll_s=0.2, log=tmp_path / "vllm.log"):
        pass
