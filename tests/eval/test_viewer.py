"""The annotation server through HTTP: auth, isolation, concurrent writes, traversal, resume, Table 2."""

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from eval.viewer.items import reasoning_steps
from eval.viewer.results import cohen_kappa, table2
from eval.viewer.server import start_server

REASONING = "Step 1: the left lung [300, 60, 420, 380] is clear. Step 2: the heart [150, 200, 330, 380] is normal."


def make_world(root: Path, escape: bool = False) -> dict:
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "test").mkdir()
    items, a_rows, b_rows = [], [], []
    for i in range(4):
        Image.new("L", (448, 532), 90).save(root / "data" / "images" / f"{i}.jpg")
        image = "../../secret.jpg" if escape and i == 3 else f"images/{i}.jpg"
        items.append({"id": f"x{i}", "task": "vqa", "prompt": "Is there an effusion?", "answer": "no",
                      "images": [image], "frame": {"width": 448, "height": 532}})
        for rows, text in ((a_rows, REASONING), (b_rows, "The lungs look fine.")):
            rows.append({"id": f"x{i}", "dataset": "mimic-ext-vqa", "task": "vqa", "prediction": "no",
                         "reference": "no", "reasoning": text})
    if escape:
        Image.new("L", (10, 10)).save(root / "secret.jpg")
    (root / "data" / "test" / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in a_rows))
    (root / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in b_rows))
    return {
        "predictions": {"model-a": str(root / "a.jsonl"), "model-b": str(root / "b.jsonl")},
        "items_file": str(root / "data" / "test" / "items.jsonl"), "image_roots": [str(root / "data")],
        "database": str(root / "labels.sqlite"), "mode": "annotate", "sample": {"size": 210, "seed": 0},
        "annotators": {"alice": {"token": "tok-alice", "group": "1"}, "bob": {"token": "tok-bob", "group": "2"},
                       "carol": {"token_env": "CAROL_TOKEN", "group": "1"}},
        "host": "127.0.0.1", "port": 0,
    }


def call(url, token=None, body=None):
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            return response.status, (json.loads(data) if response.headers["Content-Type"].startswith("application/json") else data)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROL_TOKEN", "tok-carol")
    running = start_server(make_world(tmp_path, escape=True))
    yield running
    running.close()


def full_labels(preferred="left"):
    labels = [{"target": side, "step": step, "dimension": d, "value": 1}
              for side in ("left", "right") for step in range(1) for d in ("relevance", "correctness")]
    labels += [{"target": side, "step": None, "dimension": "completeness", "value": 1} for side in ("left", "right")]
    labels += [{"target": "pair", "step": None, "dimension": d, "value": preferred}
               for d in ("grounded_preference", "overall_preference")]
    return labels


def test_auth_blinding_and_item_payload(server):
    assert call(f"{server.url}/api/items")[0] == 401
    assert call(f"{server.url}/api/items", "wrong")[0] == 401
    status, me = call(f"{server.url}/api/me", "tok-carol")  # token from the environment
    assert status == 200 and me == {"annotator": "carol", "group": "1", "mode": "annotate"}
    status, item = call(f"{server.url}/api/item/0", "tok-alice")
    assert status == 200 and {s["name"] for s in item["sides"]} == {None}  # blinded
    steps = next(s for s in item["sides"] if s["steps"])["steps"]
    assert steps[0]["boxes"] == [[300.0, 60.0, 420.0, 380.0]]
    status, page = call(f"{server.url}/")
    assert status == 200 and b"<html" in page.lower()


def test_a_box_past_float_range_keeps_the_item_page_valid_json(tmp_path, monkeypatch):
    """``[1e999, ...]`` parses as infinity; Python would send it as ``Infinity``, which a browser's
    JSON.parse refuses, and the item would not open. The box stays in the step's text, counted."""
    config = make_world(tmp_path)
    path = Path(config["predictions"]["model-a"])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["reasoning"] = "Step 1: the left lung [1e999, 60, 420, 380] is clear. Step 2: the heart [150, 200, 330, 380]."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("CAROL_TOKEN", "tok-carol")
    running = start_server(config)
    try:
        request = urllib.request.Request(f"{running.url}/api/item/0", headers={"Authorization": "Bearer tok-alice"})
        with urllib.request.urlopen(request, timeout=10) as response:
            def refuse(constant):
                raise ValueError(f"not JSON: {constant}")
            item = json.loads(response.read(), parse_constant=refuse)
    finally:
        running.close()
    steps = next(side["steps"] for side in item["sides"] if "1e999" in json.dumps(side["steps"]))
    assert steps[0]["boxes"] == [] and steps[0]["unplaceable_boxes"] == 1 and "[1e999, 60, 420, 380]" in steps[0]["text"]
    assert steps[1]["boxes"] == [[150.0, 200.0, 330.0, 380.0]] and steps[1]["unplaceable_boxes"] == 0


def test_images_only_from_the_configured_folders(server):
    assert call(f"{server.url}/image/0?token=tok-alice")[0] == 200
    assert call(f"{server.url}/image/3?token=tok-alice")[0] == 403  # ../../secret.jpg
    for path in ("/image/..%2F..%2Fsecret.jpg", "/image/../../secret.jpg", "/image/-1", "/etc/passwd"):
        assert call(f"{server.url}{path}?token=tok-alice")[0] == 404
    assert call(f"{server.url}/image/0")[0] == 401


def test_annotators_see_and_edit_only_their_own_labels(server):
    assert call(f"{server.url}/api/labels/0", "tok-alice", {"labels": full_labels("left")}) == (200, {"saved": 8})
    assert call(f"{server.url}/api/labels/0", "tok-bob")[1] == {"labels": []}
    call(f"{server.url}/api/labels/0", "tok-alice", {"labels": [
        {"target": "pair", "step": None, "dimension": "overall_preference", "value": "right"}]})
    mine = call(f"{server.url}/api/labels/0", "tok-alice")[1]["labels"]
    assert len(mine) == 8 and {"target": "pair", "step": None, "dimension": "overall_preference", "value": "right"} in mine


@pytest.mark.parametrize("label", [
    {"target": "left", "step": 0, "dimension": "relevance", "value": True},
    {"target": "left", "step": 0, "dimension": "relevance", "value": 1.0},
    {"target": "left", "step": True, "dimension": "relevance", "value": 1},
    {"target": "left", "step": 9, "dimension": "relevance", "value": 1},
    {"target": "left", "step": 0, "dimension": "relevance", "value": 2},
    {"target": "middle", "step": None, "dimension": "completeness", "value": 1},
    {"target": "pair", "step": None, "dimension": "overall_preference", "value": "both"},
    {"target": "left", "step": 0, "dimension": "beauty", "value": 1},
])
def test_malformed_labels_are_refused(server, label):
    status, reply = call(f"{server.url}/api/labels/0", "tok-alice", {"labels": [label]})
    assert status == 400 and reply["error"]


def test_concurrent_writes_lose_nothing(server):
    failures = []

    def annotate(token, item):
        try:
            status = call(f"{server.url}/api/labels/{item}", token, {"labels": full_labels()})[0]
        except OSError as error:  # a reset connection is a lost write too
            status = repr(error)
        if status != 200:
            failures.append(status)

    threads = [threading.Thread(target=annotate, args=(token, item)) for token in ("tok-alice", "tok-bob", "tok-carol")
               for item in range(3) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rows = server.store.all_rows()
    assert len(rows) == 3 * 3 * 8  # annotators x items x labels, repeats merged
    assert len({(r["annotator"], r["item_id"]) for r in rows}) == 9


def test_labels_survive_a_server_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("CAROL_TOKEN", "tok-carol")
    config = make_world(tmp_path)
    first = start_server(config)
    call(f"{first.url}/api/labels/1", "tok-alice", {"labels": full_labels()})
    first.close()
    second = start_server(config)
    try:
        assert len(call(f"{second.url}/api/labels/1", "tok-alice")[1]["labels"]) == 8
    finally:
        second.close()


def test_table2_and_agreement():
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa([1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 0, 1]) == pytest.approx(
        cohen_kappa_score([1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 0, 1]))
    rows = []
    for annotator, group, relevant, preferred in (("a1", "1", "1", "m1"), ("a2", "2", "1", "m1"), ("a3", "2", "0", "m2")):
        for item in ("i1", "i2"):
            rows.append({"annotator": annotator, "group": group, "item_id": item, "target": "left", "model": "m1",
                         "step": 0, "dimension": "relevance", "value": relevant, "updated_at": ""})
            rows.append({"annotator": annotator, "group": group, "item_id": item, "target": "pair", "model": preferred,
                         "step": -1, "dimension": "overall_preference", "value": "left", "updated_at": ""})
    result = table2(rows)
    assert result["scores"]["m1"]["1"]["relevance"] == 1.0
    assert result["scores"]["m1"]["2"]["relevance"] == 1.0  # group 2 tie broken by the first annotator (a2)
    assert result["scores"]["m1"]["average"]["overall_preference"] == 1.0
    assert result["agreement"]["relevance"]["percent_agreement"] == 1.0


def test_steps_split_on_markers_or_sentences():
    assert [s["text"][:6] for s in reasoning_steps(REASONING)] == ["Step 1", "Step 2"]
    assert len(reasoning_steps("The heart [1, 2, 3, 4] is big. The lungs are clear.")) == 2
    assert reasoning_steps("") == []


def test_static_export_draws_boxes_where_the_reasoning_puts_them(tmp_path):
    from eval.viewer.export import COLOURS, export_items
    from eval.viewer.items import load_view_items

    config = make_world(tmp_path)
    items = load_view_items(Path(config["items_file"]), {"model-a": Path(config["predictions"]["model-a"])}, None, 0,
                            blind=False)
    (path, *_) = export_items(items, tmp_path / "png", limit=2)
    with Image.open(path) as sheet:
        assert sheet.size == (448, 532)  # frame-sized (no upscale needed at this size)
        assert sheet.getpixel((360, 60)) == COLOURS[0]  # top edge of step 1's box [300, 60, 420, 380]
        assert sheet.getpixel((150, 290)) == COLOURS[1]  # left edge of step 2's box
        assert sheet.getpixel((200, 100)) == (90, 90, 90)  # inside: the image itself


def test_static_export_draws_any_box_a_model_writes_and_names_what_it_cannot(tmp_path, capsys):
    """A model writes a box bottom-up (y1 > y0) or far off the image: PIL refuses such rectangles, and
    one stopped `make demo`'s export. They are drawn where they point (clipped to the canvas); a box
    that is not four finite numbers is left out and named."""
    from eval.viewer.__main__ import main

    config = make_world(tmp_path)
    swapped = REASONING.replace("[300, 60, 420, 380]", "[420, 380, 300, 60]") + " Also [1e300, 0, 2e300, 9] and [1e999, 0, 1, 1]."
    rows = [json.loads(line) for line in Path(config["predictions"]["model-a"]).read_text().splitlines()]
    for row in rows:
        row["reasoning"] = swapped
    Path(config["predictions"]["model-a"]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = [json.loads(line) for line in Path(config["items_file"]).read_text().splitlines()]
    items[0]["ground_truth"] = json.dumps({"boxes": [[10, 20, 30, 40], ["left", "lung"]]})
    Path(config["items_file"]).write_text("".join(json.dumps(i) + "\n" for i in items))

    assert main(["export", "--items-file", config["items_file"], "--predictions", f"model-a={config['predictions']['model-a']}",
                 "--predictions", f"model-b={config['predictions']['model-b']}", "--out", str(tmp_path / "png"),
                 "--limit", "1"]) == 0
    err = capsys.readouterr().err
    assert "2 box(es) are not shown" in err and "true box ['left', 'lung']" in err and "model-a's step 2 writes 1 box(es) past float range" in err
    (path,) = (tmp_path / "png").glob("*.png")
    with Image.open(path) as sheet:
        assert sheet.getpixel((360, 60)) != (90, 90, 90)  # the swapped box's top edge, drawn
        assert sheet.getpixel((20, 20)) == (255, 255, 255)  # the well-formed true box, drawn white


def test_results_are_not_served_while_annotating(server):
    call(f"{server.url}/api/labels/0", "tok-alice", {"labels": full_labels()})
    status, reply = call(f"{server.url}/api/results", "tok-bob")
    assert status == 403 and "eval.viewer results" in reply["error"]
