"""The search page in a real browser: Debian's headless Chromium, driven by Selenium.

What this proves: the page works end to end against a running `sketchsearch serve`. Real
pointer events draw a sketch stroke by stroke on the canvas; the page sends the canvas as a
PNG while a stroke is drawn (throttled) and when it ends, shows only the newest answer as
result tiles, and the top tile names the sketch's category. One search is in flight at a time:
while an answer is held back, the strokes drawn meanwhile wait and only the newest is sent
next, and the answers shown only ever move forward; an answer arriving late for a query a
photo replaced is never shown. After a failed search (network error, HTTP 500, a 503 retry)
the earlier results are marked stale. A photo chosen through the file input finds itself
with a score of about 1 and opens larger at `size=large`. Undo redraws from the kept
strokes and searches again; an empty canvas clears the results. Against a server
with an API key and `--min-score 0.9999`, the page asks for the key, loads images as blobs, and
marks the results under the threshold "no confident match". The page fits a phone's width, and
/docs renders the OpenAPI document without the network.

How it stays deterministic with the weak tiny model: the gallery holds the demo sketch itself
(the same strokes rendered by OpenCV at the page's pen width, black on white) beside other
categories' synthetic photos. The browser's drawing of those strokes is a near-duplicate of
that item (score ~1.000 against ~0.92 for the best photo), so it ranks first whatever the
model has learned. Waits are on the page's own hooks (body data-sequence / data-shown, the
window.sketchsearchRenders list of answers shown), never on sleeps; a slow or failing server
is played by wrapping the page's window.fetch, holding an answer until the test releases it.

What it does not prove: retrieval quality. A near-duplicate ranks first for any sane encoder;
how well real sketches find real photos is measured by `sketchsearch evaluate` on a split.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from service_server import ServeProcess

from sketchsearch.data.synth import SynthConfig, photo_id, render_instance
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.gallery_build import build_gallery, folder_sources

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30

CANVAS = 512  # the page's <canvas width=512 height=512>
PEN = 6  # the page's default pen width (#pen-width)
DEMO_LABEL = "house"  # the demo sketch's category folder

Point = tuple[int, int]

# The demo sketch, a house: walls, roof, door, window, drawn in this order on the page's grid.
HOUSE: tuple[tuple[Point, ...], ...] = (
    ((136, 240), (136, 420), (376, 420), (376, 240)),
    ((112, 256), (256, 110), (400, 256)),
    ((226, 420), (226, 330), (286, 330), (286, 420)),
    ((300, 270), (350, 270), (350, 310), (300, 310), (300, 270)),
)
OTHER_CATEGORIES = ("arrow", "bell", "car")  # synthetic photos beside the house
API_KEY = "browser-test-key"


def render_strokes(strokes: tuple[tuple[Point, ...], ...], path: Path) -> Path:
    """Round black lines of the page's pen width on white, as the page's canvas draws them."""
    image = np.full((CANVAS, CANVAS), 255, np.uint8)
    for stroke in strokes:
        line = np.array(stroke, np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [line], False, 0, PEN, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def gallery(tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small gallery: the demo sketch under "house" and three synthetic photos of each of
    three other categories. Built by library calls, so nothing is recorded beside the shared
    model.

    No other sketches: the tiny model puts every line drawing within ~0.001 of each other in
    cosine, too close for a browser's anti-aliasing not to reorder them; photos score ~0.9.
    """
    folder = tmp_path_factory.mktemp("browser")
    images = folder / "images"
    render_strokes(HOUSE, images / DEMO_LABEL / "demo.png")
    config = SynthConfig(size=128, sketches_per_photo=1, seed=3)
    for category in OTHER_CATEGORIES:
        (images / category).mkdir()
        for index in range(3):
            photo, _sketches = render_instance(config, category, index)
            cv2.imwrite(str(images / category / f"{photo_id(category, index)}.jpg"), photo)
    with open_engine(tiny_onnx, batch_pipeline=True, domain="gallery") as engine:
        report = build_gallery(
            engine, folder / "gallery", images, folder_sources(images), progress=False
        )
    assert not report.failed, report.failed
    photo = images / OTHER_CATEGORIES[1] / f"{photo_id(OTHER_CATEGORIES[1], 0)}.jpg"
    # Like nothing in the gallery: a plain red picture scores ~0.94 at best (a synthetic photo
    # of an unseen category ~0.99: the tiny model's embeddings are crowded).
    unseen = folder / "red.png"
    cv2.imwrite(str(unseen), np.full((128, 128, 3), (0, 0, 255), np.uint8))
    return {"model": tiny_onnx, "gallery": folder / "gallery", "photo": photo, "unseen": unseen}


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [str(tool) for tool in (CHROMIUM, CHROMEDRIVER) if not tool.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: apt-get install chromium chromium-driver",
            pytrace=False,
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1100,800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths are given, so Selenium Manager has nothing to look up or download.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1100, 800)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(gallery: dict[str, Path]) -> Iterator[str]:
    with ServeProcess(gallery["model"], gallery["gallery"]) as served:
        yield served.url


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(
        lambda d: "gallery:" in d.find_element(By.ID, "info").text,
        "the page never showed /v1/info",
    )


def body_number(driver: WebDriver, name: str) -> int:
    return int(driver.execute_script(f"return document.body.dataset.{name}"))


# The page's own variables: a query newer than arguments[0] has been submitted.
SUBMITTED = "return sequence > arguments[0] && lastQuery !== null && lastQuery.mine === sequence"


def settle(driver: WebDriver) -> None:
    """Wait until the newest query's answer (or error) is on screen; fail on an error."""
    WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(
            "return document.body.dataset.shown === document.body.dataset.sequence"
        ),
        "the page never showed the newest query's answer",
    )
    status = driver.find_element(By.ID, "status")
    assert "error" not in (status.get_attribute("class") or ""), status.text


def draw_stroke(driver: WebDriver, canvas: WebElement, stroke: tuple[Point, ...]) -> None:
    """One stroke with real pointer events: down, a move every ~48 px, up.

    Offsets are from the canvas's centre (W3C actions) and scaled to its displayed size. A
    pause halfway makes the stroke last longer than the page's 300 ms throttle, so the next
    move makes a query while the stroke is drawn. The pen stays down (actions keep their
    state between calls) until that query is submitted (sent, or waiting behind one in
    flight): the page encodes the canvas asynchronously and drops a mid-stroke query that
    the stroke's end overtook, which a loaded machine can make happen for a short stroke.
    """
    box = canvas.rect
    scale = box["width"] / CANVAS

    def offset(point: Point) -> tuple[int, int]:
        x, y = point[0] * scale - box["width"] / 2, point[1] * scale - box["height"] / 2
        return round(x), round(y)

    def pointer() -> ActionBuilder:
        return ActionBuilder(driver, mouse=PointerInput(interaction.POINTER_MOUSE, "mouse"),
                             duration=10)  # fmt: skip

    points = densify(stroke)
    half = max(1, len(points) // 2)
    before = int(driver.execute_script("return sequence"))  # the page's newest query's number
    first = pointer()
    first.pointer_action.move_to(canvas, *offset(points[0])).pointer_down()
    for point in points[1:half]:
        first.pointer_action.move_to(canvas, *offset(point))
    first.pointer_action.pause(0.35)
    first.pointer_action.move_to(canvas, *offset(points[half]))
    first.perform()
    WebDriverWait(driver, WAIT_S, poll_frequency=0.02).until(
        lambda d: d.execute_script(SUBMITTED, before), "no query was made while drawing"
    )
    rest = pointer()
    for point in points[half + 1 :]:
        rest.pointer_action.move_to(canvas, *offset(point))
    rest.pointer_action.pointer_up()
    rest.perform()


def densify(stroke: tuple[Point, ...], step: float = 48.0) -> list[Point]:
    points: list[Point] = [stroke[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
        pieces = max(1, round(np.hypot(x1 - x0, y1 - y0) / step))
        points += [
            (round(x0 + i / pieces * (x1 - x0)), round(y0 + i / pieces * (y1 - y0)))
            for i in range(1, pieces + 1)
        ]
    return points


def tiles(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#results .result")


def no_script_errors(driver: WebDriver) -> None:
    errors = [e for e in driver.get_log("browser") if e.get("source") == "javascript"]
    assert not errors, errors


def save_screenshot(driver: WebDriver, tmp_path: Path) -> None:
    """Into tmp_path, and to $SKETCHSEARCH_SCREENSHOT (the docs image) when it is set.

    Headless Chromium's viewport is smaller than its window; the page is laid out at exactly
    1100x800 for the picture, then given back its window.
    """
    metrics = {"width": 1100, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        assert driver.save_screenshot(str(tmp_path / "serve-page.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    target = os.environ.get("SKETCHSEARCH_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "serve-page.png", target)


def test_drawing_the_demo_sketch_finds_its_category(
    browser: WebDriver, server: str, tmp_path: Path
) -> None:
    open_page(browser, server)
    canvas = browser.find_element(By.ID, "sketch")
    for number, stroke in enumerate(HOUSE, start=1):
        draw_stroke(browser, canvas, stroke)
        settle(browser)  # the stroke's own answer is shown before the next stroke starts
        assert body_number(browser, "searches") >= number
    # The pause in each stroke outlasts the 300 ms throttle, so each stroke sent a request
    # while it was drawn as well as one when it ended.
    assert body_number(browser, "requests") >= 2 * len(HOUSE)
    shown = tiles(browser)
    assert shown, "no result tiles"
    top = shown[0]
    assert top.get_attribute("data-rank") == "1"
    assert top.get_attribute("data-label") == DEMO_LABEL
    assert float(top.get_attribute("data-score")) > 0.9
    save_screenshot(browser, tmp_path)
    no_script_errors(browser)


def test_a_chosen_photo_finds_itself(browser: WebDriver, server: str, gallery: dict[str, Path]):
    open_page(browser, server)
    browser.find_element(By.ID, "photo").send_keys(str(gallery["photo"]))
    settle(browser)
    top = tiles(browser)[0]
    assert top.get_attribute("data-label") == OTHER_CATEGORIES[1]
    assert float(top.get_attribute("data-score")) == pytest.approx(1.0, abs=1e-3)
    # A click shows the item larger: the versioned image URL at size=large (a JPEG of at
    # most 1024 px, so the 128 px photo keeps its own size).
    thumbnail = top.find_element(By.TAG_NAME, "img").get_attribute("src")
    top.find_element(By.TAG_NAME, "button").click()
    large = browser.find_element(By.ID, "viewer-image")
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(loaded, large))
    source = large.get_attribute("src")
    assert source.startswith(thumbnail) and source.endswith("&size=large"), (thumbnail, source)
    assert browser.execute_script(loaded, large) == 128
    no_script_errors(browser)


def ink_at(driver: WebDriver, point: Point) -> int:
    """The canvas's red value at a point of its drawing grid (0 black, 255 white)."""
    script = "return arguments[0].getContext('2d').getImageData(arguments[1], arguments[2], 1, 1)"
    canvas = driver.find_element(By.ID, "sketch")
    return int(driver.execute_script(f"{script}.data[0]", canvas, *point))


def test_undo_redraws_and_clear_empties_the_results(browser: WebDriver, server: str) -> None:
    open_page(browser, server)
    canvas = browser.find_element(By.ID, "sketch")
    for stroke in HOUSE[:2]:
        draw_stroke(browser, canvas, stroke)
    settle(browser)
    wall, roof_top = HOUSE[0][1], HOUSE[1][1]
    assert ink_at(browser, wall) < 128 and ink_at(browser, roof_top) < 128
    before = body_number(browser, "searches")
    browser.find_element(By.ID, "undo").click()
    settle(browser)
    assert body_number(browser, "searches") == before + 1  # undo searches again
    assert ink_at(browser, wall) < 128 and ink_at(browser, roof_top) == 255
    assert tiles(browser)
    browser.find_element(By.ID, "clear").click()
    settle(browser)
    assert not tiles(browser)  # an empty canvas clears the results instead of searching
    assert body_number(browser, "searches") == before + 1
    # A key entered later must not search again for the sketch no longer drawn.
    assert browser.execute_script("return lastQuery") is None
    no_script_errors(browser)


# Wraps the page's window.fetch: the next /v1/search answer is held until the test calls
# window.releaseHeld(), and ignores the page's abort (as a response already on its way would).
# window.searchLog counts the searches in flight at once (most), keeps the held query's
# sequence number (a sketch is sent as the newest query), and `late` turns true once the page
# has read the held answer's body, i.e. after the page handled it.
HOLD_NEXT_SEARCH = """
const original = window.fetch;
const log = (window.searchLog = { active: 0, most: 0, held: null, late: false });
let release;
const held = new Promise((resolve) => (release = resolve));
window.releaseHeld = release;
let holding = true;
window.fetch = async (url, options = {}) => {
  if (!String(url).includes("/v1/search")) return original(url, options);
  log.active += 1;
  log.most = Math.max(log.most, log.active);
  const hold = holding;
  holding = false;
  try {
    if (!hold) return await original(url, options);
    log.held = Number(document.body.dataset.sequence);
    const { signal, ...unabortable } = options;
    const response = await original(url, unabortable);
    await held;
    const json = response.json.bind(response);
    response.json = async () => {
      const answer = await json();
      setTimeout(() => (log.late = true), 0);
      return answer;
    };
    return response;
  } finally {
    log.active -= 1;
  }
};
"""


def renders(driver: WebDriver) -> list[int]:
    """The sequence numbers of the answers the page has shown, in order."""
    return [int(n) for n in driver.execute_script("return window.sketchsearchRenders")]


def test_one_search_at_a_time_and_answers_only_move_forward(
    browser: WebDriver, server: str
) -> None:
    """While the first stroke's answer is held back, two strokes' worth of queries wait: only
    the newest is sent once the held one is answered, and the held (older) answer is shown
    before it, never after."""
    open_page(browser, server)
    browser.execute_script(HOLD_NEXT_SEARCH)
    canvas = browser.find_element(By.ID, "sketch")
    for stroke in HOUSE[:2]:
        draw_stroke(browser, canvas, stroke)
    # The stroke's end is a query made from the canvas asynchronously (toBlob): wait until the
    # newest query is the one waiting (the page's own variables) before letting the held go.
    WebDriverWait(browser, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script("return waiting !== null && waiting.mine === sequence"),
        "the newest query never waited",
    )
    assert body_number(browser, "requests") == 1  # the held one; the rest wait
    held = browser.execute_script("return window.searchLog.held")
    assert body_number(browser, "sequence") > held + 1  # the strokes made newer queries
    browser.execute_script("window.releaseHeld()")
    settle(browser)
    assert browser.execute_script("return window.searchLog.most") == 1
    assert body_number(browser, "requests") == 2  # then only the newest of those waiting
    shown = renders(browser)
    assert shown == [held, body_number(browser, "sequence")], shown
    assert tiles(browser)
    no_script_errors(browser)


def test_a_late_answer_for_a_replaced_query_is_never_shown(
    browser: WebDriver, server: str, gallery: dict[str, Path]
) -> None:
    """A photo chosen while a sketch's search is held replaces it; the sketch's answer, let
    through afterwards, must not replace the photo's results."""
    open_page(browser, server)
    browser.execute_script(HOLD_NEXT_SEARCH)
    draw_stroke(browser, browser.find_element(By.ID, "sketch"), HOUSE[0])
    browser.find_element(By.ID, "photo").send_keys(str(gallery["photo"]))
    settle(browser)
    photo_query = body_number(browser, "sequence")
    assert renders(browser) == [photo_query]
    browser.execute_script("window.releaseHeld()")
    WebDriverWait(browser, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script("return window.searchLog.late"), "the held answer never came"
    )
    assert renders(browser) == [photo_query]  # the late sketch answer was ignored
    assert body_number(browser, "shown") == body_number(browser, "sequence") == photo_query
    assert tiles(browser)[0].get_attribute("data-label") == OTHER_CATEGORIES[1]
    no_script_errors(browser)


# Makes the page's /v1/search fetches fail as arguments[0] says ("reject": a network error,
# or an HTTP status answered with the service's JSON error) until window.restoreFetch().
FAIL_SEARCHES = """
const original = window.fetch;
const how = arguments[0];
const once = arguments[1];
window.restoreFetch = () => (window.fetch = original);
window.fetch = async (url, options) => {
  if (!String(url).includes("/v1/search")) return original(url, options);
  if (once) window.restoreFetch();
  if (how === "reject") throw new TypeError("simulated network failure");
  const kind = how === 503 ? "not_ready" : "internal";
  const body = JSON.stringify({ error: `simulated ${how}`, kind, status: how });
  const headers = { "Content-Type": "application/json", "Retry-After": "1" };
  return new Response(body, { status: how, headers });
};
"""


def stale(driver: WebDriver) -> bool:
    """Whether the grid is marked as an earlier query's, checked to be marked both ways (read
    in one script: the page may change between two reads)."""
    marked, note_shown, note = driver.execute_script(
        "const note = document.getElementById('stale');"
        "return [document.getElementById('results').classList.contains('stale'),"
        " getComputedStyle(note).display !== 'none', note.textContent]"
    )
    assert marked == note_shown, (marked, note_shown)
    if marked:
        assert "results of an earlier sketch" in note.lower(), note
    return marked


def fail_then_check_stale(driver: WebDriver, how: object) -> None:
    before = renders(driver)
    driver.execute_script(FAIL_SEARCHES, how, False)
    driver.find_element(By.ID, "undo").click()  # searches the canvas left again
    WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(
            "return document.body.dataset.shown === document.body.dataset.sequence"
        ),
        "the page never showed the failure",
    )
    status = driver.find_element(By.ID, "status")
    assert "error" in status.get_attribute("class"), status.text
    assert stale(driver) and tiles(driver)
    assert renders(driver) == before
    driver.execute_script("window.restoreFetch()")


def test_a_failed_search_marks_the_results_stale(browser: WebDriver, server: str) -> None:
    open_page(browser, server)
    canvas = browser.find_element(By.ID, "sketch")
    for stroke in HOUSE[:2]:
        draw_stroke(browser, canvas, stroke)
    settle(browser)
    assert tiles(browser) and not stale(browser)

    fail_then_check_stale(browser, "reject")
    assert "simulated network failure" in browser.find_element(By.ID, "status").text
    draw_stroke(browser, canvas, HOUSE[1])
    settle(browser)  # a good answer makes the results current again
    assert tiles(browser) and not stale(browser)

    fail_then_check_stale(browser, 500)
    assert "simulated 500" in browser.find_element(By.ID, "status").text
    draw_stroke(browser, canvas, HOUSE[1])
    settle(browser)
    assert not stale(browser)

    # 503 not_ready: the page waits out Retry-After with the results marked, then asks again.
    browser.execute_script(FAIL_SEARCHES, 503, True)
    requests = body_number(browser, "requests")
    browser.find_element(By.ID, "undo").click()
    WebDriverWait(browser, WAIT_S, poll_frequency=0.05).until(
        lambda d: stale(d), "the results were not marked while the retry waited"
    )
    assert "retrying" in browser.find_element(By.ID, "status").text
    settle(browser)
    assert body_number(browser, "requests") == requests + 2  # the refused one and its retry
    assert tiles(browser) and not stale(browser)
    no_script_errors(browser)


def test_the_page_fits_a_phone_screen(browser: WebDriver, server: str) -> None:
    browser.set_window_size(390, 844)
    try:
        open_page(browser, server)
        width = browser.execute_script("return document.documentElement.clientWidth")
        overflow = browser.execute_script("return document.documentElement.scrollWidth")
        assert overflow <= width
        assert browser.find_element(By.ID, "sketch").rect["width"] <= width
    finally:
        browser.set_window_size(1100, 800)


def test_the_docs_page_renders_the_openapi_document(browser: WebDriver, server: str) -> None:
    browser.get(server + "docs")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".operation"), "no operations rendered"
    )
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".operation h3")]
    assert any(h.startswith("POST") and h.endswith("/v1/search") for h in headings), headings
    text = browser.find_element(By.ID, "operations").text
    for expected in ("/v1/info", "min_score", "image/png", "422"):
        assert expected in text, expected
    no_script_errors(browser)


def marked_tiles(driver: WebDriver) -> list[WebElement]:
    """The tiles marked under the threshold, checked to be marked in all three ways."""
    marked = [t for t in tiles(driver) if t.get_attribute("data-confident") == "false"]
    for tile in marked:
        assert "unconfident" in tile.get_attribute("class")
        assert "no confident match" in tile.text
    return marked


def test_with_a_key_and_a_threshold(gallery: dict[str, Path], browser: WebDriver) -> None:
    """A server with an API key and `--min-score 0.9999`: the page asks for the key, then
    fetches images as blobs; only the photo itself is confident and the rest are marked; a
    picture like nothing in the gallery gets an answer said to hold no confident match."""
    extra = ["--min-score", "0.9999", "--api-key", API_KEY]
    with ServeProcess(gallery["model"], gallery["gallery"], extra) as served:
        browser.get(served.url)
        key = browser.find_element(By.ID, "api-key")
        WebDriverWait(browser, WAIT_S).until(lambda _: key.is_displayed(), "no key field")
        key.send_keys(API_KEY, Keys.ENTER)
        WebDriverWait(browser, WAIT_S).until(
            lambda d: "gallery:" in d.find_element(By.ID, "info").text, "the key was refused"
        )
        photo = browser.find_element(By.ID, "photo")
        photo.send_keys(str(gallery["photo"]))
        settle(browser)
        top = tiles(browser)[0]
        image = top.find_element(By.TAG_NAME, "img")
        loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
        WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script(loaded, image))
        assert image.get_attribute("src").startswith("blob:")
        assert top.get_attribute("data-confident") == "true"
        assert "no confident match" not in top.text
        assert len(marked_tiles(browser)) == len(tiles(browser)) - 1
        verdict = browser.find_element(By.ID, "verdict")
        assert not verdict.is_displayed()  # the answer as a whole is confident

        photo.send_keys(str(gallery["unseen"]))
        settle(browser)
        assert len(marked_tiles(browser)) == len(tiles(browser)) > 0
        assert verdict.is_displayed() and "No confident match" in verdict.text
    no_script_errors(browser)
