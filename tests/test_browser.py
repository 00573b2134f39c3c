"""The drawing page in headless Chromium against the real service: API, Redis and a worker.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Screenshots go
to ./artifacts/.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import flask
import numpy as np
import pytest
import requests
from processes import ROOT, digits_api, redis_db, wait_for
from redis import Redis
from selenium import webdriver
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_preprocess import WEIGHTS, encode, redraw
from werkzeug.serving import BaseWSGIServer, make_server

import model
from api import auth, create_app, images
from model import data
from scripts.registry import publish_file

ARTIFACTS = ROOT / "artifacts"
REDIS_URL = redis_db(13)  # this module's database: flushed before and after
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,860",
    # A page left for another is otherwise kept alive in the back-forward cache, its socket
    # open: the tests that leave a page wait for the server to see its connection close.
    "--disable-features=BackForwardCache",
)
CSV_ROWS = 300
WAIT = 30  # seconds any single step of the page may take

pytestmark = pytest.mark.slow


class Seen(NamedTuple):
    """A request the page made: method, path and the key it carried (header or query)."""

    method: str
    path: str
    key: str | None


class LiveService:
    """The API served on a free port by a threaded WSGI server, with one worker process."""

    def __init__(self) -> None:
        self.app = create_app({"REDIS_URL": REDIS_URL, "DIGITS_CHUNK_ROWS": 50})
        self.requests: list[Seen] = []  # every /v1 request the page made
        self.app.before_request(self._record)
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "worker", "--redis-url", REDIS_URL],
            cwd=ROOT,
        )

    def _record(self) -> None:
        request = flask.request
        if request.path.startswith("/v1/"):
            key = request.headers.get("Authorization") or request.args.get("access_token")
            self.requests.append(Seen(request.method, request.path, key))

    def made(self, method: str, path: str) -> list[Seen]:
        """The requests of this method to paths matching the regular expression `path`."""
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def start(self) -> None:
        """Serve, and wait until /readyz sees Redis, the model and the worker."""
        self.thread.start()
        deadline = time.monotonic() + WAIT
        while requests.get(f"{self.url}/readyz", timeout=5).status_code != 200:
            assert self.worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the service did not get ready"
            time.sleep(0.2)

    def stop(self) -> None:
        self.worker.terminate()
        try:
            self.worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        self.server.shutdown()
        self.thread.join()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    publish_file(connection, WEIGHTS, activate=True)
    service = LiveService()
    try:
        service.start()
        yield service
    finally:
        service.stop()
        connection.flushdb()
        connection.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(live: LiveService, browser: Chrome, request: pytest.FixtureRequest) -> Iterator[Chrome]:
    """The page freshly loaded; after the test, a screenshot and no console errors."""
    browser.get(f"{live.url}/")
    WebDriverWait(browser, WAIT).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".bar"))
    browser.get_log("browser")  # start each test with an empty console
    yield browser
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    _, _, x_test, y_test = data.load_mnist()
    return x_test, y_test


def seven() -> list[list[tuple[float, float]]]:
    """Pen strokes of a 7 on the 280 px pad: the bar, then the stem with a slight curve."""
    bar = [(70.0 + 14 * i, 62.0 + i % 2) for i in range(11)]
    stem = [(210 - 9 * i, 62 + 17 * i + 3 * math.sin(i / 3)) for i in range(12)]
    return [bar + stem]


def three() -> list[list[tuple[float, float]]]:
    """Pen strokes of a 3: two bowls, drawn in one go from the top left."""
    top = [(140 + 48 * math.cos(a), 95 + 40 * math.sin(a)) for a in np.linspace(-2.6, 1.5, 14)]
    bottom = [(140 + 58 * math.cos(a), 185 + 52 * math.sin(a)) for a in np.linspace(-1.5, 2.5, 16)]
    return [top + bottom]


def draw(driver: Chrome, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw with the mouse: Selenium's actions reach the page as real pointer events."""
    pad = driver.find_element(By.ID, "pad")
    half = pad.size["width"] / 2
    actions = ActionChains(driver, duration=10)
    for stroke in strokes:
        x, y = stroke[0]
        actions.move_to_element_with_offset(pad, int(x - half), int(y - half)).click_and_hold()
        for x, y in stroke[1:]:
            actions.move_to_element_with_offset(pad, int(x - half), int(y - half))
        actions.release()
    actions.perform()


def prediction(driver: Chrome) -> dict:
    """Wait for the answer to the whole drawing (not to a part of it), then read the page."""
    WebDriverWait(driver, WAIT).until(
        lambda d: (
            d.find_element(By.ID, "label").text not in ("?", "")
            and d.find_element(By.ID, "pad").get_attribute("data-pending") is None
        )
    )
    return driver.execute_script(
        """
        const seen = document.getElementById("seen").getContext("2d").getImageData(0, 0, 28, 28);
        let ink = 0;
        for (let i = 0; i < seen.data.length; i += 4) ink += seen.data[i];
        return {
          label: document.getElementById("label").textContent,
          best: [...document.querySelectorAll(".bar.best")].map((b) => b.dataset.digit),
          bars: [...document.querySelectorAll(".bar")].map((b) => Number(b.dataset.probability)),
          seenInk: ink,
          version: document.getElementById("model-version").textContent,
          message: document.getElementById("message").textContent,
        };
        """
    )


def current_version(live: LiveService) -> str:
    return requests.get(f"{live.url}/v1/models", timeout=5).json()["current"]


def test_page_loads_without_console_errors(page: Chrome) -> None:
    assert page.title == "digits"
    assert len(page.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 10
    assert page.find_element(By.ID, "pad").size == {"width": 280, "height": 280}


def test_drawing_a_digit_shows_its_prediction(page: Chrome, live: LiveService) -> None:
    draw(page, three())
    shown = prediction(page)
    assert shown["label"] == "3"
    assert shown["best"] == ["3"]
    assert len(shown["bars"]) == 10 and sum(shown["bars"]) == pytest.approx(1, abs=1e-3)
    assert shown["bars"][3] == max(shown["bars"])
    assert shown["seenInk"] > 0
    assert shown["version"] == current_version(live)
    ARTIFACTS.mkdir(exist_ok=True)
    page.save_screenshot(str(ARTIFACTS / "drawn-digit.png"))


def two_strokes() -> list[list[tuple[float, float]]]:
    """Pen strokes of "1 1": two short upright strokes far apart, not one digit."""
    return [[(60.0, 110 + 6.0 * i) for i in range(11)], [(220.0, 110 + 6.0 * i) for i in range(11)]]


def test_a_flagged_answer_shows_not_sure(page: Chrome, live: LiveService) -> None:
    draw(page, two_strokes())
    shown = prediction(page)
    assert shown["label"] == "not sure"
    assert "best guess" in page.find_element(By.ID, "confidence").text
    assert shown["seenInk"] > 0
    page.find_element(By.ID, "clear").click()
    draw(page, three())
    assert prediction(page)["label"] == "3"  # a clear digit is shown as the digit again
    assert "unsure" not in page.find_element(By.ID, "label").get_attribute("class")


def test_clear_empties_the_pad(page: Chrome) -> None:
    draw(page, seven())
    prediction(page)
    page.find_element(By.ID, "clear").click()
    assert page.find_element(By.ID, "label").text == "?"
    blank = page.execute_script(
        """
        const pad = document.getElementById("pad");
        const pixels = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
        return pixels.every((value) => value === 255);
        """
    )
    assert blank


def test_uploading_a_picture_shows_its_prediction(
    page: Chrome, mnist_test: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x_test, y_test = mnist_test
    picture = tmp_path / "digit.jpg"
    picture.write_bytes(
        encode(redraw(x_test[3].reshape(28, 28), np.random.default_rng(5)), "JPEG", quality=85)
    )
    page.find_element(By.ID, "image-file").send_keys(str(picture))
    shown = prediction(page)
    assert shown["label"] == str(y_test[3])
    assert shown["seenInk"] > 0


def upload_csv(
    page: Chrome, mnist_test: tuple[np.ndarray, np.ndarray], tmp_path: Path, rows: int = CSV_ROWS
) -> str:
    """Upload the first `rows` test digits as a labelled CSV; return the submission offered."""
    x_test, y_test = mnist_test
    table = np.column_stack([y_test[:rows], x_test[:rows]])
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    upload = tmp_path / "test.csv"
    np.savetxt(upload, table, fmt="%d", delimiter=",", header=header, comments="")
    page.find_element(By.ID, "csv-file").send_keys(str(upload))
    WebDriverWait(page, WAIT).until(lambda d: d.find_element(By.ID, "download").is_displayed())
    link = page.find_element(By.ID, "download")
    assert link.get_attribute("download") == "submission.csv"
    return page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then((r) => r.text()).then(done);",
        link.get_attribute("href"),
    )


def test_csv_upload_reaches_100_percent_and_offers_the_submission(
    page: Chrome, live: LiveService, mnist_test: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x_test, y_test = mnist_test
    live.requests.clear()
    text = upload_csv(page, mnist_test, tmp_path)
    assert page.find_element(By.ID, "progress").get_attribute("value") == "1"
    status = page.find_element(By.ID, "batch-status").text
    assert re.fullmatch(r"Done: 300 rows, \d+ uncertain, accuracy \d+\.\d\d%\.", status)
    submission = list(csv.reader(io.StringIO(text)))
    assert submission[0] == ["ImageId", "Label"]
    assert [int(image_id) for image_id, _ in submission[1:]] == list(range(1, CSV_ROWS + 1))
    labels = np.array([int(label) for _, label in submission[1:]])
    assert np.array_equal(labels, model.load(WEIGHTS).predict(x_test[:CSV_ROWS]))
    # Followed through its events, one connection, never by asking for its status.
    assert len(live.made("GET", "/v1/batches/[0-9a-f]+/events")) == 1
    assert live.made("GET", "/v1/batches/[0-9a-f]+") == []


def test_api_key_is_sent_and_remembered(page: Chrome, live: LiveService) -> None:
    key = page.find_element(By.ID, "api-key")
    key.send_keys("s3cret-key")
    page.find_element(By.ID, "clear").click()  # moves the focus: the key field's change event
    live.requests.clear()
    draw(page, seven())
    prediction(page)
    assert [r.key for r in live.made("GET", "/v1/predict/live")] == ["s3cret-key"]
    page.refresh()
    WebDriverWait(page, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".bar"))
    assert page.find_element(By.ID, "api-key").get_attribute("value") == "s3cret-key"
    page.execute_script("localStorage.clear()")


def test_drawings_go_over_one_connection(page: Chrome, live: LiveService) -> None:
    live.requests.clear()
    draw(page, three())
    assert prediction(page)["label"] == "3"
    page.find_element(By.ID, "clear").click()
    draw(page, seven())
    assert prediction(page)["label"] == "7"
    assert len(live.made("GET", "/v1/predict/live")) == 1  # one handshake for both drawings
    assert live.made("POST", "/v1/predict.*") == []


class Held:
    """Hold the first prediction the service is asked for until released: a slow answer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = images.answer
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        monkeypatch.setattr(images, "answer", self.answer)

    def answer(self, *args: object) -> object:
        self.calls += 1
        if self.calls > 1:
            return self.real(*args)
        self.started.set()
        assert self.release.wait(WAIT)
        try:
            return self.real(*args)
        finally:
            self.done.set()


ANSWERS_SHOWN = """
window.answersShown = [];
const label = document.getElementById("label");
new MutationObserver(() => window.answersShown.push(Number(label.dataset.drawing))).observe(
  label, { attributes: true, attributeFilter: ["data-drawing"] });
"""


def test_a_slow_answer_is_never_shown_after_a_newer_drawing(
    page: Chrome, live: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(monkeypatch)
    page.execute_script(ANSWERS_SHOWN)
    draw(page, [[(200.0, 62.0)]])  # a dot, sent once the pen lifts: its answer will be slow
    assert held.started.wait(WAIT), "the first drawing never reached the service"
    slow = int(page.find_element(By.ID, "pad").get_attribute("data-drawing"))
    draw(page, seven())  # newer drawings, answered while the dot is still being predicted
    assert prediction(page)["label"] == "7"
    held.release.set()
    assert held.done.wait(WAIT)
    time.sleep(1)  # time for a stale answer to arrive, if one were sent
    shown = page.execute_script("return window.answersShown")
    assert shown and slow not in shown and shown == sorted(shown)
    assert page.find_element(By.ID, "label").text == "7"


def test_an_uploaded_picture_shows_its_crop_box_and_what_the_model_saw(
    page: Chrome, live: LiveService, mnist_test: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x_test, y_test = mnist_test
    written = redraw(x_test[3].reshape(28, 28), np.random.default_rng(5))
    height, width = written.shape
    sheet = np.full((2 * height, 3 * width), 255, np.uint8)  # the digit in its upper right
    sheet[:height, 2 * width :] = written
    picture = tmp_path / "sheet.png"
    picture.write_bytes(encode(sheet))
    expected = requests.post(
        f"{live.url}/v1/predict/image", files={"file": picture.read_bytes()}, timeout=WAIT
    ).json()
    page.find_element(By.ID, "image-file").send_keys(str(picture))
    shown = prediction(page)
    assert shown["label"] == str(y_test[3])
    overlay = page.find_element(By.ID, "box")
    WebDriverWait(page, WAIT).until(lambda _: overlay.get_attribute("data-box"))
    assert overlay.get_attribute("data-box") == ",".join(map(str, expected["box"]))
    assert page.execute_script(SEEN_PIXELS) == expected["pixels"]
    # The sheet is fitted into the 280 px pad, centred: where the box's edges must be drawn.
    scale = min(280 / sheet.shape[1], 280 / sheet.shape[0])
    x0, y0 = (280 - sheet.shape[1] * scale) / 2, (280 - sheet.shape[0] * scale) / 2
    left, top, right, bottom = (
        x0 + expected["box"][0] * scale,
        y0 + expected["box"][1] * scale,
        x0 + expected["box"][2] * scale,
        y0 + expected["box"][3] * scale,
    )
    red = page.execute_script(RED_PIXELS)
    middle = ((left + right) / 2, (top + bottom) / 2)
    for x, y in ((left, middle[1]), (right, middle[1]), (middle[0], top), (middle[0], bottom)):
        assert any(abs(x - rx) <= 1.5 and abs(y - ry) <= 1.5 for rx, ry in red), (x, y)
    assert all(abs(middle[0] - rx) > 5 or abs(middle[1] - ry) > 5 for rx, ry in red)
    assert all(left - 2 <= rx <= right + 2 and top - 2 <= ry <= bottom + 2 for rx, ry in red)
    page.find_element(By.ID, "clear").click()
    assert page.execute_script(RED_PIXELS) == []


SEEN_PIXELS = """
const data = document.getElementById("seen").getContext("2d").getImageData(0, 0, 28, 28).data;
const rows = [];
for (let r = 0; r < 28; r++) {
  rows.push([...Array(28).keys()].map((c) => data[(r * 28 + c) * 4]));
}
return rows;
"""
RED_PIXELS = """
const box = document.getElementById("box");
const data = box.getContext("2d").getImageData(0, 0, box.width, box.height).data;
const found = [];
for (let i = 0; i < data.length; i += 4) {
  if (data[i + 3] > 128 && data[i] > 150 && data[i + 1] < 100) {
    found.push([(i / 4) % box.width, Math.floor(i / 4 / box.width)]);
  }
}
return found;
"""


def test_with_keys_on_the_page_draws_and_follows_batches_with_the_key(
    page: Chrome,
    live: LiveService,
    monkeypatch: pytest.MonkeyPatch,
    mnist_test: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    keyed = auth.policy({**live.app.config, "DIGITS_API_KEYS": "right-key"})
    monkeypatch.setitem(live.app.extensions, auth.EXTENSION, keyed)
    field = page.find_element(By.ID, "api-key")
    field.send_keys("wrong-key")
    page.find_element(By.ID, "clear").click()
    draw(page, seven())
    WebDriverWait(page, WAIT).until(lambda d: "not valid" in d.find_element(By.ID, "message").text)
    field.clear()
    field.send_keys("right-key")
    page.find_element(By.ID, "clear").click()
    live.requests.clear()
    draw(page, seven())
    assert prediction(page)["label"] == "7"
    assert [r.key for r in live.made("GET", "/v1/predict/live")] == ["right-key"]
    upload_csv(page, mnist_test, tmp_path, rows=60)
    assert [r.key for r in live.made("GET", "/v1/batches/[0-9a-f]+/events")] == ["right-key"]
    page.get_log("browser")  # the refused handshake and 401 were logged, as they should be
    page.execute_script("localStorage.clear()")


@pytest.fixture(scope="module")
def shipped(
    live: LiveService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`digits api` as shipped (gunicorn, gevent) on the live service's Redis and worker."""
    log = tmp_path_factory.mktemp("shipped") / "api.log"
    with digits_api(REDIS_URL, "--processes", "1", log=log) as (url, _):
        wait_for(lambda: requests.get(f"{url}/readyz", timeout=5).ok, WAIT, "digits api ready")
        yield url, log


def logged_requests(log: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [(line["method"], line["path"]) for line in lines if line.get("message") == "request"]


def test_the_page_predicts_over_a_websocket_on_digits_api(
    browser: Chrome, shipped: tuple[str, Path]
) -> None:
    url, log = shipped
    browser.get(f"{url}/")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".bar"))
    draw(browser, three())
    assert prediction(browser)["label"] == "3"
    browser.find_element(By.ID, "clear").click()
    draw(browser, two_strokes())
    assert prediction(browser)["label"] == "not sure"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "digits-api-gevent.png"))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.get("about:blank")  # the page's connection closes: its request line is written
    wait_for(lambda: ("GET", "/v1/predict/live") in logged_requests(log), WAIT, "the socket")
    assert [r for r in logged_requests(log) if r[1].startswith("/v1/predict")] == [
        ("GET", "/v1/predict/live")
    ]
