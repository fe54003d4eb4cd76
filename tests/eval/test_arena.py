import json

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import kendalltau

from eval.arena.bradley_terry import Battles, fit, normalised, ranks, sandwich_intervals
from eval.arena.judges import parse_verdict
from eval.arena.run import main as arena_main
from eval.arena.sampling import PairSampler
from tests.chat_server import FakeChatServer, completion

TRUTH = np.linspace(-1.5, 1.5, 6)


def simulated(strategy: str, battles: int, seed: int) -> Battles:
    sampler = PairSampler(len(TRUTH), strategy, seed)
    rng = np.random.default_rng(seed + 1)
    first, second, outcome, propensity = [], [], [], []
    while len(outcome) < battles:
        for pair, p in sampler.sample(50):
            i, j = sampler.pairs[pair]
            h = float(rng.random() < expit(TRUTH[i] - TRUTH[j]))
            sampler.update(pair, h, p)
            first.append(i), second.append(j), outcome.append(h), propensity.append(p)
    return Battles(np.array(first), np.array(second), np.array(outcome), np.array(propensity))


@pytest.mark.parametrize("strategy", ["uniform", "active", "active_mixed"])
def test_fit_recovers_the_true_order(strategy):
    battles = simulated(strategy, 3000, seed=0)
    scores = fit(battles, len(TRUTH), weighted=strategy != "uniform")
    assert kendalltau(scores, TRUTH).statistic >= 0.85
    assert abs(scores.sum()) < 1e-6  # centred
    intervals = sandwich_intervals(scores, battles, weighted=strategy != "uniform")
    assert np.all(intervals[:, 0] <= scores) and np.all(scores <= intervals[:, 1])


def test_uniform_fit_equals_unweighted_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    battles = simulated("uniform", 2000, seed=3)
    design = np.zeros((len(battles), len(TRUTH)))
    design[np.arange(len(battles)), battles.first] = 1
    design[np.arange(len(battles)), battles.second] = -1
    model = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000)
    model.fit(design, battles.outcome)
    reference = model.coef_[0] - model.coef_[0].mean()
    assert fit(battles, len(TRUTH), weighted=False) == pytest.approx(reference, abs=1e-3)


def test_active_sampling_starts_with_unseen_pairs_and_mixing_bounds_weights():
    sampler = PairSampler(4, "active", seed=0)
    assert np.allclose(sampler.probabilities(), 1 / 6)
    mixed = PairSampler(4, "active_mixed", seed=0, epsilon=0.2)
    for pair in range(6):
        mixed.update(pair, 1.0, 1 / 6)
    assert mixed.probabilities().min() >= 0.2 / 6 - 1e-12


def test_ranks_respect_overlapping_intervals():
    scores = np.array([1.0, 0.9, -1.0])
    intervals = np.array([[0.5, 1.5], [0.4, 1.4], [-1.5, -0.5]])
    assert ranks(scores, intervals).tolist() == [1, 1, 3]
    assert normalised(np.array([2.0, -1.0])).tolist() == [1.0, -0.5]


@pytest.mark.parametrize("reply, verdict", [("A", "A"), ("b.", "B"), ("TIE", "tie"), ("Report A", "unparseable"),
                                            ("a tie", "tie"), ("a better report is B", "unparseable"),
                                            ("", "unparseable"), (None, "unparseable"), ("**A**\nbecause", "A")])
def test_verdict_parsing(reply, verdict):
    assert parse_verdict(reply) == verdict


def write_models(tmp_path):
    references = [f"Small left pleural effusion number {i}. No pneumothorax. Mild cardiomegaly." for i in range(12)]
    paths = {}
    for name, keep in (("strong", 1.0), ("middle", 0.6), ("weak", 0.2)):
        rows = []
        for i, ref in enumerate(references):
            words = ref.split()
            rows.append({"id": f"r{i}", "dataset": "mimic-cxr", "task": "findings", "reference": ref,
                         "prediction": " ".join(words[: max(1, int(len(words) * keep))])})
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def test_reference_judge_ranks_models_by_quality(tmp_path):
    paths = write_models(tmp_path)
    args = [f"--model={n}={p}" for n, p in paths.items()] + ["--judge", "reference", "--budget", "120",
                                                              "--out", str(tmp_path / "out"), "--bootstrap", "20"]
    assert arena_main(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [row["model"] for row in summary["ranking"]] == ["strong", "middle", "weak"]
    assert summary["judgments"] == 240  # every pair in both orders
    for name in ("battle_counts.csv", "win_rates.json", "ranking.md", "win_rates.png"):
        assert (tmp_path / "out" / name).exists()


def test_endpoint_judge_against_a_local_server_and_its_cache(tmp_path):
    paths = write_models(tmp_path)

    def behave(prompt, attempt):
        a = prompt.split("Report A:\n")[1].split("\n\nReport B:")[0]
        b = prompt.split("Report B:\n")[1].split("\n\nWhich report")[0]
        if "number 3." in a and attempt == 1:
            return 429, {"error": {"message": "slow down"}}, 0, {"Retry-After": "0"}
        if "number 5." in a:
            return 200, completion("I cannot decide"), 0, {}
        return 200, completion("A" if len(a) > len(b) else "B" if len(b) > len(a) else "TIE"), 0, {}

    server = FakeChatServer(behave)
    base = [f"--model={n}={p}" for n, p in paths.items()] + [
        "--judge", "endpoint", "--base-url", server.url, "--budget", "60", "--out", str(tmp_path / "out"),
        "--bootstrap", "0", "--max-retries", "2", "--timeout", "5"]
    try:
        assert arena_main(base) == 0
        first = json.loads((tmp_path / "out" / "summary.json").read_text())
        requests = len(server.requests)
        assert arena_main(base) == 0
        again = json.loads((tmp_path / "out" / "summary.json").read_text())
    finally:
        server.close()
    assert first["requests_sent"] > 0 and again["requests_sent"] == 0 and len(server.requests) == requests
    assert first["verdicts"]["unparseable"] > 0 and first["verdicts"]["A"] + first["verdicts"]["B"] > 0
    assert [row["model"] for row in first["ranking"]] == ["strong", "middle", "weak"]


def test_remote_judges_are_refused_without_opt_in(tmp_path):
    from data_prep.endpoint import RemoteEndpointRefused

    paths = write_models(tmp_path)
    with pytest.raises(RemoteEndpointRefused):
        arena_main([f"--model={n}={p}" for n, p in paths.items()] + [
            "--base-url", "https://api.example.com/v1", "--out", str(tmp_path / "out")])


def test_with_image_needs_the_items_file(tmp_path):
    paths = write_models(tmp_path)
    with pytest.raises(SystemExit, match="--items-file"):
        arena_main([f"--model={n}={p}" for n, p in paths.items()] + ["--judge", "reference", "--with-image",
                                                                      "--out", str(tmp_path / "out")])


def test_local_endpoints_ignore_proxy_variables(tmp_path, monkeypatch):
    from data_prep.endpoint import CallCache, ChatEndpoint, EndpointConfig

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    server = FakeChatServer(lambda prompt, attempt: (200, completion("A"), 0, {}))
    try:
        endpoint = ChatEndpoint(EndpointConfig(base_url=server.url, max_retries=0, timeout_s=5), CallCache(tmp_path))
        result = endpoint.complete([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    finally:
        server.close()
    assert result.content == "A" and len(server.requests) == 1
