"""End to end: draw a digit with the mouse in a real JupyterLab (Playwright and Debian's Chromium), and keep it.

JupyterLab and Chromium are started as in `test_browser.py` (its fixtures and helpers, imported). The test opens the
lesson `11_draw.ipynb`, runs all its cells, then on the drawing pad it shows: draws a 7 with the mouse (press, move,
release), sees the prediction and the probability chart, clears the pad, tries a single dot and reads the message,
draws the 7 again, chooses its true class, presses **Keep this digit**, and checks through Kosh that the lesson's store
holds the new digit (`store.find(source="drawn")`). Screenshots of each step go to `test-artifacts/browser-draw/`.

Run it with `python3 -m pytest tests/test_browser_draw.py -m browser`.
"""
from __future__ import annotations

import re
import time

import pytest

from test_browser import (TIMEOUT_SCALE, Shots, browser_page, jupyter_lab, labelled, run_all_cells, stages,  # noqa: F401
                          wait_until)  # (fixtures and helpers of the lab's browser test: the same JupyterLab and Chromium)

pytestmark = pytest.mark.browser

LESSON = "11_draw.ipynb"
UI_SECONDS = 30 * TIMEOUT_SCALE  # for a drawing to be read and shown, or a digit kept (DIGITS_TUTORIAL_TIMEOUT_SCALE scales it)
SEVEN = [(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)]  # a 7, as fractions of the pad


def test_draw_a_digit_in_jupyterlab(jupyter_lab, browser_page, root, stages):
    url, lessons = jupyter_lab
    page, blocked = browser_page
    shots = Shots(page, root / "test-artifacts" / "browser-draw")
    start = time.monotonic()
    try:
        draw_and_keep(page, re.sub(r"/lab/tree/[^?]+", f"/lab/tree/{LESSON}", url), lessons, shots, stages)
        stages.end()
    except BaseException:
        stages.end(failed=True)
        try: shots("failure")
        except Exception: pass
        raise
    print(f"draw test: {time.monotonic() - start:.0f} s in the browser")
    assert not blocked, f"the page tried to reach other addresses than the local JupyterLab: {blocked}"


def kept_digits(lessons):
    "The drawn digits of the lesson's store, read through Kosh from this process: [(line, label, predicted)]."
    import kosh
    store = kosh.connect(str(lessons / "lesson-output" / "draw" / "store.sql"), read_only=True)
    try:
        return sorted((d.line, d.label, getattr(d, "predicted", None)) for d in store.find(source="drawn"))
    finally:
        store.close()


def stroke(page, canvas, points, steps=12):
    "Draw one stroke through `points` (fractions of the canvas) with the mouse: press, move, release."
    box = canvas.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]: page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def draw_and_keep(page, url, lessons, shots, stages):
    from playwright.sync_api import expect
    stages.begin("the lesson opens with an idle kernel")
    page.goto(url, timeout=60_000 * TIMEOUT_SCALE)
    run_all_cells(page, lessons / LESSON, shots, stages)
    stages.begin("a 7 drawn, read, cleared; a dot refused; the 7 kept")

    canvas = page.locator("canvas.digits-draw-canvas")
    expect(canvas).to_have_count(1)
    pad = page.locator(".jp-OutputArea-output > .widget-vbox").filter(has=canvas)
    expect(pad).to_have_count(1)
    prediction = labelled(pad, "widget-html", "Prediction").locator(".widget-html-content")
    expect(prediction).to_have_text(re.compile("Draw a digit on the pad"))
    before = kept_digits(lessons)
    assert len(before) == 12, before  # the lesson kept its own sketches
    canvas.scroll_into_view_if_needed()
    shots("pad-ready", pad)

    # 1. a 7 with the mouse: the prediction, its probability chart, the steps and the nearest training digits
    stroke(page, canvas, SEVEN)
    shown = pad.locator(".digits-draw-prediction")
    expect(shown).to_have_text(re.compile(r"^\d$"), timeout=UI_SECONDS * 1000)
    expect(prediction).to_contain_text(re.compile(r"with probability \d+%"))
    chart = pad.locator("img.digits-draw-figure[alt='probability of each class']")
    expect(chart).to_be_visible()
    wait_until(lambda: chart.evaluate("e => e.complete && e.naturalWidth > 0"), UI_SECONDS, "the probability chart did not load")
    expect(pad.locator("img.digits-draw-figure[alt^='the drawing, its 32x32 bitmap']")).to_be_visible()
    expect(pad.locator("table.digits-neighbours tr.neighbour-row")).to_have_count(8)
    first_reading = shown.inner_text()
    assert first_reading == "7", f"the model read the mouse's 7 as {first_reading}"
    shots("drawn-7-read", pad)

    # 2. Clear, then a single dot: a message, not a prediction
    pad.get_by_role("button", name="Clear", exact=True).click()
    expect(prediction).to_have_text(re.compile("Draw a digit on the pad"), timeout=UI_SECONDS * 1000)
    expect(chart).to_have_count(0)
    assert canvas.evaluate("c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every(v => v === 0)")
    stroke(page, canvas, [(0.5, 0.5)])
    expect(prediction.locator("[role=alert]")).to_contain_text("too small to be a digit", timeout=UI_SECONDS * 1000)
    expect(shown).to_have_count(0)
    shots("dot-refused", pad)

    # 3. the 7 again, its true class, Keep: the pad is cleared and the store holds the digit
    pad.get_by_role("button", name="Clear", exact=True).click()
    expect(prediction).to_have_text(re.compile("Draw a digit on the pad"), timeout=UI_SECONDS * 1000)
    stroke(page, canvas, SEVEN)
    expect(shown).to_have_text("7", timeout=UI_SECONDS * 1000)
    true_class = labelled(pad, "widget-toggle-buttons", "True class")
    true_class.get_by_role("button", name="7", exact=True).click()
    expect(true_class.locator("button.mod-active")).to_have_text("7")
    shots("class-7-chosen", pad)
    pad.get_by_role("button", name=re.compile(r"Keep this digit$")).click()
    expect(pad.get_by_text(re.compile(r"^Kept as a 7: drawn digit 13 in the store"))).to_be_visible(timeout=UI_SECONDS * 1000)
    expect(labelled(pad, "widget-html", "Your digits").locator(".widget-html-content")).to_contain_text("13 kept in the store")
    expect(prediction).to_have_text(re.compile("Draw a digit on the pad"))
    expect(pad.locator("img.digits-draw-figure")).to_have_count(0)  # no picture of the kept digit comes back
    expect(pad.locator("table.digits-neighbours")).to_have_count(0)
    assert canvas.evaluate("c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every(v => v === 0)")
    after = kept_digits(lessons)
    assert after[:-1] == before and after[-1] == (13, 7, 7), after
    shots("kept", pad)
