"""End-to-end: the viewer page in headless Chromium against the real viewer server.

Checks that the page draws a reasoning step's box where the reasoning puts it (scaled from the
model's frame to the displayed image, also after a resize), links steps and boxes, loads and saves
the five expert ratings through the JSON API, keeps annotators apart, and resumes saved labels.

Needs Debian's ``chromium`` and ``chromedriver`` (``apt-get install chromium chromium-driver``) and
``selenium``; when they are missing the test fails rather than skips, so CI cannot pass silently.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from rewards.boxes import parse_boxes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FRAME = {"width": 448, "height": 532}
TOKENS = {"alice": "tok-alice", "bob": "tok-bob"}
TOLERANCE = 2.0  # pixels
WAIT = 10  # seconds, for any one condition

PREDICTION = {"model-a": "yes", "model-b": "no"}  # distinct, so a blinded side tells its model


def reasoning(model: str, k: int) -> str:
    """A model's reasoning on item ``k``. model-a: two steps, one box each; model-b: three steps, the
    second citing two boxes, the third none."""
    if model == "model-a":
        return (f"Step 1: The left lung [{300 + 4 * k}, 60, 420, 380] is clear. "
                f"Step 2: The cardiac silhouette [150, {200 + 5 * k}, 300, 400] is not enlarged.")
    return (f"Step 1: The right lung [40, {70 + 3 * k}, 180, 390] shows a faint opacity. "
            f"Step 2: Compare the lower zone [60, 300, 160, 420] with the apex [250, 100, 400, 200]. "
            f"Step 3: No pleural effusion is seen.")


def first_box(text: str) -> list[float]:
    return list(parse_boxes(text)[0])


def build_data(tmp: Path) -> dict:
    root = tmp / "data"
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    items = []
    for k in range(3):
        image = Image.new("L", (FRAME["width"], FRAME["height"]), 20)
        draw = ImageDraw.Draw(image)
        draw.ellipse((40, 60, 200, 420), fill=90 + 10 * k)
        draw.ellipse((250, 60, 410, 420), fill=90 + 10 * k)
        image.convert("RGB").save(root / "images" / f"{k}.jpg", quality=85)
        items.append({"id": f"cxr-{k}", "task": "vqa", "prompt": f"Is the study {k} normal?", "answer": "yes",
                      "images": [f"images/{k}.jpg"], "frame": dict(FRAME)})
    items_file = root / "splits" / "items.jsonl"
    items_file.write_text("".join(json.dumps(item) + "\n" for item in items))
    predictions = {}
    for model in ("model-a", "model-b"):
        path = tmp / f"{model}.jsonl"
        rows = []
        for k, item in enumerate(items):
            text = reasoning(model, k)
            rows.append({"id": item["id"], "dataset": "mimic-ext-vqa", "task": "vqa", "prediction": PREDICTION[model],
                         "reference": "yes", "reasoning": text, "boxes": [list(b) for b in parse_boxes(text)],
                         "raw_output": f"<think>{text}</think>\\boxed{{{PREDICTION[model]}}}"})
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        predictions[model] = str(path)
    return {
        "predictions": predictions,
        "items_file": str(items_file),
        "image_roots": [str(root)],
        "database": str(tmp / "labels.sqlite"),
        "annotators": {"alice": {"token": TOKENS["alice"], "group": "1"},
                       "bob": {"token": TOKENS["bob"], "group": "2"}},
        "mode": "annotate",
        "sample": {"size": 210, "seed": 0},
        "host": "127.0.0.1",
        "port": 0,
    }


def api_get(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def chrome(user_data: Path):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"the viewer end-to-end test needs headless Chromium: missing {', '.join(missing)} "
                    "(apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:  # pragma: no cover - environment problem
        pytest.fail(f"the viewer end-to-end test needs selenium ({error}); install it from the lock file")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={user_data}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


GEOMETRY = """
const rect = document.querySelector('rect.box[data-side="left"]');
const img = document.querySelector('img[data-side="left"]');
if (!rect || !img) return null;
const r = rect.getBoundingClientRect(), i = img.getBoundingClientRect();
return {rect: [r.left, r.top, r.right, r.bottom], img: [i.left, i.top, i.width, i.height],
        step: rect.getAttribute('data-step'), loaded: img.complete && img.naturalWidth > 0};
"""


def expected_rect(geometry: dict, box: list[float]) -> list[float]:
    left, top, width, height = geometry["img"]
    sx, sy = width / FRAME["width"], height / FRAME["height"]
    return [left + box[0] * sx, top + box[1] * sy, left + box[2] * sx, top + box[3] * sy]


def rect_matches(geometry: dict | None, box: list[float]) -> bool:
    if not geometry or not geometry["loaded"]:
        return False
    return all(abs(a - b) <= TOLERANCE for a, b in zip(geometry["rect"], expected_rect(geometry, box)))


def wait_for_box(driver, box: list[float], previous_height: float | None = None) -> dict:
    """The left side's first box once the image is loaded (and, after a resize, re-laid out) and the
    box sits where ``box`` puts it; on timeout, fail with where it was drawn instead."""
    deadline, geometry = time.monotonic() + WAIT, None
    while time.monotonic() < deadline:
        geometry = driver.execute_script(GEOMETRY)
        resized = previous_height is None or (geometry and abs(geometry["img"][3] - previous_height) > 5)
        if resized and rect_matches(geometry, box):
            return geometry
        time.sleep(0.05)
    expected = expected_rect(geometry, box) if geometry else None
    raise AssertionError(f"box {box} not drawn in place: page geometry {geometry}, expected rect {expected}")


def test_viewer_draws_links_and_saves_ratings(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from eval.viewer.server import start_server

    started = time.monotonic()
    config = build_data(tmp_path)
    server = start_server(config)
    driver = None
    try:
        base = server.url.rstrip("/")
        alice = TOKENS["alice"]
        item = api_get(f"{base}/api/item/0", alice)
        assert [side["side"] for side in item["sides"]] == ["left", "right"]
        assert all(side["name"] is None for side in item["sides"])  # annotate mode is blinded
        k = int(item["id"].split("-")[1])
        # Which model sits on the left (blinded, so tell them apart by their answers), and the box its
        # reasoning cites first: the page must draw exactly that box, in the item's frame.
        left_model = next(m for m, p in PREDICTION.items() if p == item["sides"][0]["prediction"])
        box = first_box(reasoning(left_model, k))

        driver = chrome(tmp_path / "chrome-profile")
        driver.set_window_size(1280, 700)  # short: the X-ray is scaled down to fit the viewport
        driver.get(f"{base}/?token={alice}&item=0")
        wait = WebDriverWait(driver, WAIT)
        geometry = wait_for_box(driver, box)
        assert geometry["step"] == "0"
        assert geometry["img"][3] < FRAME["height"] - 10, "the image should be displayed scaled down"
        expected = expected_rect(geometry, box)
        assert all(abs(a - b) <= TOLERANCE for a, b in zip(geometry["rect"], expected)), (geometry, expected)
        assert driver.find_element(By.ID, "counter").text.replace(" ", "") == "1/3"

        # Every box of every step is drawn.
        for side in item["sides"]:
            for step in side["steps"]:
                drawn = driver.find_elements(
                    By.CSS_SELECTOR, f'rect.box[data-side="{side["side"]}"][data-step="{step["index"]}"]')
                assert len(drawn) == len(step["boxes"]), (side["side"], step)

        # Step <-> box linking, both ways.
        step0 = driver.find_element(By.CSS_SELECTOR, 'li.step[data-side="left"][data-step="0"]')
        rect0 = driver.find_element(By.CSS_SELECTOR, 'rect.box[data-side="left"][data-step="0"]')
        step0.find_element(By.CSS_SELECTOR, ".step-text").click()
        wait.until(lambda d: "active" in (rect0.get_attribute("class") or ""))
        assert "active" in step0.get_attribute("class")
        step0.find_element(By.CSS_SELECTOR, ".step-text").click()  # toggles off
        wait.until(lambda d: "active" not in (rect0.get_attribute("class") or ""))
        rect0.click()
        wait.until(lambda d: "active" in (step0.get_attribute("class") or ""))
        assert "active" in rect0.get_attribute("class")

        # The overlay follows a resize.
        driver.set_window_size(1400, 1700)
        wait_for_box(driver, box, previous_height=geometry["img"][3])

        # Fill every rating control, then save.
        clicks: dict[str, str] = {}
        for side in item["sides"]:
            name = side["side"]
            for step in side["steps"]:
                i = step["index"]
                clicks[f"relevance-{name}-{i}"] = "1" if i % 2 == 0 else "0"
                clicks[f"correctness-{name}-{i}"] = "0" if (i + len(name)) % 2 else "1"
            clicks[f"completeness-{name}"] = "1" if name == "left" else "0"
        clicks["grounded_preference"] = "left"
        clicks["overall_preference"] = "right"
        for name, value in clicks.items():
            radio = driver.find_element(By.CSS_SELECTOR, f'input[type="radio"][name="{name}"][value="{value}"]')
            radio.click()
            assert radio.is_selected(), name
        rendered = {e.get_attribute("name") for e in driver.find_elements(By.CSS_SELECTOR, 'input[type="radio"]')}
        assert rendered == set(clicks), "the page's rating controls differ from the spec's"
        driver.find_element(By.ID, "submit").click()
        status = driver.find_element(By.ID, "status")
        wait.until(lambda d: status.text.startswith("saved") or status.text.startswith("error"))
        assert status.text == f"saved {len(clicks)}", status.text

        # The labels are stored as clicked, for alice only.
        want = set()
        for name, value in clicks.items():
            parts = name.split("-")
            if len(parts) == 3:
                want.add((parts[1], int(parts[2]), parts[0], int(value)))
            elif len(parts) == 2:
                want.add((parts[1], None, parts[0], int(value)))
            else:
                want.add(("pair", None, name, value))
        stored = api_get(f"{base}/api/labels/0", alice)["labels"]
        got = {(label["target"], label["step"], label["dimension"],
                label["value"] if label["target"] == "pair" else int(label["value"])) for label in stored}
        assert got == want
        assert len(stored) == len(want)
        bob = TOKENS["bob"]
        for entry in api_get(f"{base}/api/items", bob)["items"]:
            assert api_get(f"{base}/api/labels/{entry['index']}", bob)["labels"] == []

        # Reopening the item resumes the saved labels; the token now comes from sessionStorage.
        driver.get(f"{base}/?item=0")
        wait.until(lambda d: d.execute_script(
            "return document.querySelectorAll('input[type=radio]:checked').length") == len(clicks))
        for name, value in clicks.items():
            assert driver.find_element(
                By.CSS_SELECTOR, f'input[type="radio"][name="{name}"][value="{value}"]').is_selected(), name
        wait_for_box(driver, box)

        # Nothing was fetched from anywhere but the server, and no script error was raised.
        foreign = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith(location.origin + '/') && !n.startsWith('data:'))")
        assert foreign == []
        errors = [entry for entry in driver.get_log("browser")
                  if entry["level"] == "SEVERE" and entry.get("source") == "javascript"]
        assert errors == []

        shot = tmp_path / "shots" / "viewer_e2e.png"
        shot.parent.mkdir()
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        (ROOT / "outputs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "outputs" / "viewer_e2e.png")
    finally:
        if driver is not None:
            driver.quit()
        server.close()
    assert time.monotonic() - started < 60


def test_small_images_are_shown_enlarged_with_their_boxes_aligned(tmp_path):
    """Issue 16.14: the demo's ~100 px images were shown at their pixel size, too small to read."""
    from eval.viewer.server import start_server

    frame, box = {"width": 112, "height": 84}, [10, 20, 60, 70]
    (tmp_path / "data" / "images").mkdir(parents=True)
    Image.new("L", (frame["width"], frame["height"]), 90).convert("RGB").save(tmp_path / "data" / "images" / "0.jpg")
    item = {"id": "small-0", "task": "vqa", "prompt": "Is there an effusion?", "answer": "no",
            "images": ["images/0.jpg"], "frame": frame}
    (tmp_path / "data" / "splits").mkdir()
    (tmp_path / "data" / "splits" / "items.jsonl").write_text(json.dumps(item) + "\n")
    text = f"Step 1: The left lower zone [{', '.join(map(str, box))}] is clear."
    (tmp_path / "tiny.jsonl").write_text(json.dumps({"id": "small-0", "dataset": "mimic-ext-vqa", "task": "vqa",
                                                     "prediction": "no", "reference": "no", "reasoning": text}) + "\n")
    server = start_server({"predictions": {"tiny": str(tmp_path / "tiny.jsonl")},
                           "items_file": str(tmp_path / "data" / "splits" / "items.jsonl"),
                           "image_roots": [str(tmp_path / "data")], "database": str(tmp_path / "labels.sqlite"),
                           "annotators": {"alice": {"token": TOKENS["alice"]}}, "mode": "view", "port": 0})
    driver = None
    try:
        driver = chrome(tmp_path / "chrome-profile")
        for window, displayed in (((1280, 900), 512), ((560, 900), None)):
            driver.set_window_size(*window)
            driver.get(f"{server.url}/?token={TOKENS['alice']}&item=0")
            deadline, geometry = time.monotonic() + WAIT, None
            while time.monotonic() < deadline:
                geometry = driver.execute_script(GEOMETRY)
                if geometry and geometry["loaded"] and geometry["img"][2] > frame["width"] + 1:
                    break
                time.sleep(0.05)
            left, top, width, height = geometry["img"]
            assert width >= 3 * frame["width"], f"a {frame['width']} px image shown {width} px wide"
            if displayed:
                assert abs(width - displayed) <= 1
            assert abs(width / height - frame["width"] / frame["height"]) < 0.02  # aspect ratio kept
            sx, sy = width / frame["width"], height / frame["height"]
            expected = [left + box[0] * sx, top + box[1] * sy, left + box[2] * sx, top + box[3] * sy]
            assert all(abs(a - b) <= TOLERANCE for a, b in zip(geometry["rect"], expected)), (geometry, expected)
    finally:
        if driver is not None:
            driver.quit()
        server.close()
