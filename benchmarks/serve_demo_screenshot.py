"""Draw a demo sketch on the served page in headless Chromium and keep the screenshot.

    python benchmarks/serve_demo_screenshot.py --engine demo-output/model.onnx \\
        --index demo-output/gallery --category house --out docs/images/serve-demo.png

What `make demo` then the printed serve command give a user, checked by a browser: a real
`sketchsearch serve` on loopback, the page, and a sketch drawn stroke by stroke with pointer
events. The sketch is the clean outline of a new instance of the category from the synthetic
generator (`data/shapes.py`, a seed no demo image used), not a file from the gallery, so the
results are the demo model's own retrieval. Prints the top results' labels and scores, and
exits 1 when the top result is not the category (the screenshot is kept either way).
Needs Debian's `chromium` and `chromium-driver` and the [serve] and [dev] extras.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sketchsearch.data.shapes import CATEGORY_NAMES, draw

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CANVAS = 512  # the page's canvas, in its own pixels
SEED = 20261130  # not a seed `data synth` uses for the demo's images
URL_LINE = re.compile(r"serving (http://\S+/)")


def strokes(category: str, seed: int = SEED) -> list[np.ndarray]:
    """The category's outline and strokes, fitted into the canvas with a margin."""
    shape = draw(category, np.random.default_rng([seed, CATEGORY_NAMES.index(category)]))
    lines = [np.vstack([c, c[:1]]) for part in shape.parts for c in part.contours]
    lines += [np.asarray(s) for s in shape.strokes]
    every = np.concatenate(lines)
    low, span = every.min(axis=0), float(np.ptp(every, axis=0).max())
    scale = 0.8 * CANVAS / span
    offset = (CANVAS - np.ptp(every, axis=0) * scale) / 2
    return [(line - low) * scale + offset for line in lines]


@contextmanager
def served(engine: Path, index: Path) -> Iterator[str]:
    command = [sys.executable, "-m", "sketchsearch.cli", "serve", "--engine", str(engine),
               "--index", str(index), "--port", "0"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        match = URL_LINE.search(process.stdout.readline())
        if match is None:
            raise SystemExit("serve did not start (see its error above)")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1100, 800)
    return driver


def draw_on_page(driver, lines: Sequence[np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "sketch")
    box = canvas.rect
    scale = box["width"] / CANVAS
    for line in lines:
        points = [(round(x * scale - box["width"] / 2), round(y * scale - box["height"] / 2))
                  for x, y in line[:: max(1, len(line) // 40)]]  # fmt: skip
        mouse = PointerInput(interaction.POINTER_MOUSE, "mouse")
        actions = ActionBuilder(driver, mouse=mouse, duration=10)  # ms per move
        actions.pointer_action.move_to(canvas, *points[0]).pointer_down()
        for point in points[1:]:
            actions.pointer_action.move_to(canvas, *point)
        actions.pointer_action.pointer_up()
        actions.perform()


def settled(driver, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    script = "return document.body.dataset.shown === document.body.dataset.sequence"
    while time.monotonic() < deadline:
        if driver.execute_script(script):
            return
        time.sleep(0.1)
    raise SystemExit("the page never showed the newest sketch's results")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--category", default="house", choices=CATEGORY_NAMES)
    parser.add_argument(
        "--all",
        action="store_true",
        help="Also draw every other category the gallery holds (cleared in between) and "
        "count the top-1 hits.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the screenshot (PNG)")
    args = parser.parse_args(argv)

    with served(args.engine, args.index) as url:
        driver = browser()
        try:
            driver.get(url)
            time.sleep(1.0)  # /v1/info and /readyz
            held = gallery_labels(url)  # only categories the gallery holds can be found
            others = [c for c in CATEGORY_NAMES if c != args.category and c in held]
            others = others if args.all else []
            tops = {c: sketch_and_look(driver, c)[0][0] for c in others}
            found = sketch_and_look(driver, args.category)
            time.sleep(1.0)  # the thumbnails
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    for rank, (label, score) in enumerate(found[:10], start=1):
        print(f"{rank:>2}  {label:<16} {score}")
    hits = sum(label == args.category for label, _ in found[:5])
    print(f"{args.category}: top result {found[0][0] if found else None}; {hits} of the top 5")
    if tops:
        tops[args.category] = found[0][0]
        right = sorted(c for c, top in tops.items() if top == c)
        print(
            f"top result is the drawn category for {len(right)} of {len(tops)}: {', '.join(right)}"
        )
    print(f"screenshot: {args.out}")
    return 0 if found and found[0][0] == args.category else 1


def gallery_labels(url: str) -> set[str]:
    with urllib.request.urlopen(url + "v1/info", timeout=30) as answer:
        return set(json.load(answer)["gallery"]["labels"])


def sketch_and_look(driver, category: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Clear, draw the category's sketch, and read the result tiles (label, score)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "clear").click()
    draw_on_page(driver, strokes(category))
    time.sleep(0.5)
    settled(driver)
    tiles = driver.find_elements(By.CSS_SELECTOR, "#results .result")
    print(f"drew {category}: {len(tiles)} results", flush=True)
    found = [
        (t.get_attribute("data-label") or "", t.get_attribute("data-score") or "") for t in tiles
    ]
    return found or [("", "")]


if __name__ == "__main__":
    sys.exit(main())
