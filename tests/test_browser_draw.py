"""End to end: draw a digit with the mouse in a real JupyterLab (Playwright and Debian's Chromium), and keep it.

JupyterLab and Chromium are started as in `test_browser.py` (its fixtures and helpers, imported). The test copies the
README's main job's folder (a store and a logistic regression run), opens a notebook of two cells that shows the drawing
pad of lesson `11_draw.ipynb` on it (`DrawingWidget(DrawingPad(store, run))`, as the lesson makes it; the lesson itself
runs once in CI's install phase), runs them, then on the pad: draws a 7 with the mouse (press, move)
and sees the prediction, the probabilities and the contribution map appear while the button is still down, releases it
and sees the slow pictures once the pen rests, clears the pad, tries a single dot and reads the message,
draws the 7 again, chooses its true class, presses **Keep this digit**, and checks through Kosh that the folder's store
holds the new digit (`store.find(source="drawn")`). Screenshots of each step go to `test-artifacts/browser-draw/`.

A second test runs the pad's throttle (its JavaScript, as the widget ships it) in Chromium with a clock of its own: the
strokes go at once, then at most once every `THROTTLE_MS`, and always once more after the last pointer event.

Run it with `python3 -m pytest tests/test_browser_draw.py -m browser`.
"""
from __future__ import annotations

import re
import time

import pytest

import shutil

from test_browser import (CHROMIUM, CHROMIUM_ARGS, TIMEOUT_SCALE, Shots, browser_page, jupyter_lab, labelled,  # noqa: F401
                          need_chromium_and_playwright, run_all_cells, stages, wait_until, write_notebook)  # (fixtures and helpers of the lab's browser test: the same JupyterLab and Chromium)

pytestmark = pytest.mark.browser

NOTEBOOK = "draw.ipynb"  # written by the test, beside the folder it draws into
PAD_CELL = """from digits_tutorial.draw import DrawingPad, DrawingWidget
from digits_tutorial.runs import load_run, run_rows
from digits_tutorial.store import connect_store
store = connect_store("draw/store.sql")
run = load_run(store, run_rows(store)[-1]["id"], with_model=True)  # the folder's run: logistic regression
DrawingWidget(DrawingPad(store, run))"""
UI_SECONDS = 30 * TIMEOUT_SCALE  # for a drawing to be read and shown, or a digit kept (DIGITS_TUTORIAL_TIMEOUT_SCALE scales it)
SEVEN = [(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)]  # a 7, as fractions of the pad


def test_draw_a_digit_in_jupyterlab(jupyter_lab, browser_page, one_run, root, stages):
    url, work = jupyter_lab
    page, blocked = browser_page
    shots = Shots(page, root / "test-artifacts" / "browser-draw")
    shutil.copytree(one_run, work / "draw")
    notebook = write_notebook(work / NOTEBOOK, PAD_CELL)
    start = time.monotonic()
    try:
        draw_and_keep(page, url.format(NOTEBOOK), notebook, work / "draw", shots, stages)
        stages.end()
    except BaseException:
        stages.end(failed=True)
        try: shots("failure")
        except Exception: pass
        raise
    print(f"draw test: {time.monotonic() - start:.0f} s in the browser")
    assert not blocked, f"the page tried to reach other addresses than the local JupyterLab: {blocked}"


def kept_digits(folder):
    "The drawn digits of the folder's store, read through Kosh from this process: [(line, label, predicted)]."
    import kosh
    store = kosh.connect(str(folder / "store.sql"), read_only=True)
    try:
        return sorted((d.line, d.label, getattr(d, "predicted", None)) for d in store.find(source="drawn"))
    finally:
        store.close()


def stroke(page, canvas, points, steps=12, release=True):
    "Draw one stroke through `points` (fractions of the canvas) with the mouse: press, move, release (unless not asked)."
    box = canvas.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]: page.mouse.move(x, y, steps=steps)
    if release: page.mouse.up()


def draw_and_keep(page, url, notebook, folder, shots, stages):
    from playwright.sync_api import expect
    stages.begin("the notebook opens with an idle kernel")
    page.goto(url, timeout=60_000 * TIMEOUT_SCALE)
    run_all_cells(page, notebook, shots, stages)
    stages.begin("a 7 drawn, read, cleared; a dot refused; the 7 kept")

    canvas = page.locator("canvas.digits-draw-canvas")
    expect(canvas).to_have_count(1)
    pad = page.locator(".jp-OutputArea-output > .widget-vbox").filter(has=canvas)
    expect(pad).to_have_count(1)
    prediction = labelled(pad, "widget-html", "Prediction").locator(".widget-html-content")
    expect(prediction).to_have_text(re.compile("Draw a digit on the pad"))
    before = kept_digits(folder)
    assert before == [], before  # nothing drawn in the folder yet
    canvas.scroll_into_view_if_needed()
    shots("pad-ready", pad)

    # 1. a 7 with the mouse, the button held down: the prediction, its probabilities and the map come while drawing
    stroke(page, canvas, SEVEN, release=False)
    shown = pad.locator(".digits-draw-prediction")
    # the first readings are of the stroke's beginning (the 7's bar alone may read as another digit); the trailing send
    # carries the whole stroke while the button is still down, so the reading becomes 7 before the pen is lifted
    expect(shown).to_have_text("7", timeout=UI_SECONDS * 1000)
    expect(prediction).to_contain_text(re.compile(r"with probability \d+%"))
    chart = pad.locator("[role=img][aria-label='probability of each class']")
    expect(chart).to_be_visible()
    expect(pad.locator("table.digits-draw-map td")).to_have_count(64)
    steps = pad.locator("img.digits-draw-figure[alt^='the drawing, its 32x32 bitmap']")
    expect(steps).to_have_count(0)  # the slow pictures wait for the pen to rest
    held = shown.inner_text()
    shots("drawing-7-button-down", pad)
    page.mouse.up()  # only now is the pen lifted
    expect(steps).to_be_visible(timeout=UI_SECONDS * 1000)
    expect(pad.locator("table.digits-neighbours tr.neighbour-row")).to_have_count(8)
    first_reading = shown.inner_text()
    assert first_reading == "7" == held, f"the model read the mouse's 7 as {held} at the end of the stroke, {first_reading} after"
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
    expect(pad.get_by_text(re.compile(r"^Kept as a 7: drawn digit 1 in the store"))).to_be_visible(timeout=UI_SECONDS * 1000)
    expect(labelled(pad, "widget-html", "Your digits").locator(".widget-html-content")).to_contain_text("1 kept in the store")
    expect(prediction).to_have_text(re.compile("Draw a digit on the pad"))
    expect(pad.locator("img.digits-draw-figure")).to_have_count(0)  # no picture of the kept digit comes back
    expect(pad.locator("table.digits-neighbours")).to_have_count(0)
    assert canvas.evaluate("c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every(v => v === 0)")
    after = kept_digits(folder)
    assert after == [(1, 7, 7)], after
    shots("kept", pad)

    # 4. how long the page waits for a reading: printed for the report, never judged (a busy machine is slower)
    stroke(page, canvas, SEVEN, release=False)
    expect(shown).to_have_text(re.compile(r"^\d$"), timeout=UI_SECONDS * 1000)
    waits = on_screen_latencies(page, canvas, pad)
    page.mouse.up()
    if waits:
        print(f"draw test: from a pointer move to the reading changed on the page, {len(waits)} moves: median "
              f"{sorted(waits)[len(waits) // 2]:.0f} ms, longest {max(waits):.0f} ms (plus at most THROTTLE_MS when moves come faster)")


def on_screen_latencies(page, canvas, pad, moves=12) -> list[float]:
    "Milliseconds from each of `moves` pointer moves (the button held, one every 400 ms) to the pad's next change on the page."
    page.evaluate("""([canvas, pad]) => {
      const seen = window.digitsSeen = { moves: [], changes: [] };
      canvas.addEventListener("pointermove", () => seen.moves.push(performance.now()), true);
      new MutationObserver(() => seen.changes.push(performance.now()))
        .observe(pad, { subtree: true, childList: true, attributes: true, characterData: true });
    }""", [canvas.element_handle(), pad.element_handle()])
    box = canvas.bounding_box()
    for i in range(moves):  # small steps to and fro at the foot of the 7: each changes the drawing a little
        page.mouse.move(box["x"] + (0.45 + 0.04 * (i % 2)) * box["width"], box["y"] + (0.85 - 0.01 * i) * box["height"])
        page.wait_for_timeout(400)
    seen = page.evaluate("window.digitsSeen")
    waits = []
    for at in seen["moves"]:
        after = [t for t in seen["changes"] if t > at]
        if after and after[0] - at < 400: waits.append(after[0] - at)
    return waits


def in_a_page_of_its_own(work):
    """Run `work(page)` in a fresh headless Chromium, no server, and return its result; in a thread of its own, so that it
    works beside the module's Playwright (whose asyncio loop, once started, refuses a second sync Playwright in its thread)."""
    from concurrent.futures import ThreadPoolExecutor
    from playwright.sync_api import sync_playwright

    def run():
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                return work(browser.new_page())
            finally:
                browser.close()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_the_throttle_sends_at_once_then_paced_then_after_the_last_event():
    "The pad's throttle, its JavaScript as the widget ships it, in Chromium, on a clock of the test's own (no wall clock)."
    need_chromium_and_playwright()
    from digits_tutorial.draw import _THROTTLE_JS, THROTTLE_MS
    script = _THROTTLE_JS + """
    let t = 0, timers = [], points = 0;
    const sent = [];
    const clock = { now: () => t, later: (f, ms) => { const timer = { at: t + ms, f }; timers.push(timer); return timer; },
                    cancel: (timer) => { timers = timers.filter((x) => x !== timer); } };
    const until = (end) => {  // let the clock run to `end`, firing the timers due on the way
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        if (!timers.length || timers[0].at > end) break;
        const next = timers.shift(); t = next.at; next.f();
      }
      t = end;
    };
    const pace = throttle(() => sent.push([t, points]), WAIT, clock);
    for (let at = 0; at <= 100; at += 7) { until(at); points += 1; pace.ask(); }  // a pointer event every 7 ms, the last at 98
    until(1000);
    const stroke = sent.slice();
    until(2000); points += 1; pace.ask(); until(2005); points += 1; pace.ask(); pace.flush(); until(3000);  // lifted
    return { stroke, lifted: sent.slice(stroke.length) };
    """.replace("WAIT", str(THROTTLE_MS))
    result = in_a_page_of_its_own(lambda page: page.evaluate(f"() => {{ {script} }}"))
    stroke, lifted = result["stroke"], result["lifted"]
    times = [at for at, _ in stroke]
    assert stroke[0] == [0, 1]  # the first event goes at once
    assert all(b - a >= THROTTLE_MS for a, b in zip(times, times[1:]))  # then at most once every THROTTLE_MS
    assert stroke[-1][1] == 15 and 98 < times[-1] <= 98 + THROTTLE_MS, stroke  # a trailing send carries the last event
    assert lifted == [[2000, 16], [2005, 17]], lifted  # a flush sends at once, and leaves nothing pending


def test_the_canvas_sends_the_strokes_while_the_button_is_down_and_after_the_last_move():
    "The canvas's own JavaScript, on a page of its own with a stand-in for the widget's model: what it sends, and when."
    need_chromium_and_playwright()
    from digits_tutorial.draw import _CANVAS_JS, DrawingCanvas
    canvas = DrawingCanvas()
    state = {name: getattr(canvas, name) for name in ("size", "pen_width", "details_ms", "strokes")}
    state["throttle_ms"] = 3000  # longer than the moves take: after the first send, only a trailing send can carry them
    mount = """async ([source, state]) => {
      const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
      const widget = (await import(url)).default;
      window.sent = [];
      const model = { get: (name) => state[name], set: () => {}, save_changes: () => {}, on: () => {}, off: () => {},
                      send: (message) => window.sent.push(JSON.parse(JSON.stringify(message))) };
      const el = document.createElement("div");
      document.body.append(el);
      widget.render({ model, el });
    }"""

    def work(page):
        page.set_content("<html><body></body></html>")
        page.evaluate(mount, [_CANVAS_JS, state])
        box = page.locator("canvas.digits-draw-canvas").bounding_box()
        sent = lambda: page.evaluate("window.sent")  # noqa: E731
        points = lambda message: sum(len(s) for s in message.get("strokes", []))  # noqa: E731
        page.mouse.move(box["x"] + 80, box["y"] + 50)
        page.mouse.down()
        page.mouse.move(box["x"] + 200, box["y"] + 50, steps=10)
        page.mouse.move(box["x"] + 120, box["y"] + 240, steps=10)  # 1 + 20 points, the button still down
        held = wait_until(lambda: (s := sent()) and points(s[-1]) == 21 and s, UI_SECONDS,
                          f"no message carried the last pointer event while the button was down: {sent()}")
        assert len(held) >= 2 and all(m["type"] == "strokes" and m["down"] for m in held), held
        assert points(held[0]) == 1  # the first went at once, when the button was pressed
        page.mouse.up()
        done = wait_until(lambda: (s := sent()) and s[-1]["type"] == "details" and s, UI_SECONDS, "no details asked")
        lifted = done[len(held):]
        assert [m["type"] for m in lifted] == ["strokes", "details"] and lifted[0]["down"] is False, lifted
        assert points(lifted[0]) == 21 and lifted[0]["strokes"] == held[-1]["strokes"]
        assert all(0 <= v <= 1 for s in lifted[0]["strokes"] for p in s for v in p)  # fractions of the pad
    in_a_page_of_its_own(work)
