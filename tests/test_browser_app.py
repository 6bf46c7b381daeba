"""End to end: `digits-tutorial lab` as a user meets it, in Debian's Chromium driven by Playwright.

Written the way Voila's own UI tests are (voila-dashboards/voila `ui-tests/`): start the server, wait for the widgets,
act as a person would, check what the page shows. The server is the real command, `digits-tutorial lab --out DIR
--no-browser --port P`, on a folder made by `digits-tutorial run` twice (logistic regression, then k-nearest neighbours
with k=3). The test checks that the app shows no code and opens on the latest run (its model, its setting, the run
selected in the list); fits another model and finds the new run in `digits-tutorial runs --out DIR`; clicks a mistake
of the confusion matrix and sees its digits; draws a 7 with the mouse on the pad and sees it read; then stops the
command with Ctrl-C. Screenshots of every step go to `test-artifacts/browser-app/` (git-ignored).

Run it with `python3 -m pytest tests/test_browser_app.py -m browser`; timeouts scale with
`DIGITS_TUTORIAL_TIMEOUT_SCALE`, and each stage's time is printed, as in `test_browser.py`.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from test_browser import (FIT_TIMEOUT, UI_TIMEOUT, Shots, _free_port, cell_titles, html_text, labelled, need_chromium_and_playwright,
                          local_chromium_page, stages, wait_until)  # noqa: F401 (stages: a fixture)
from test_browser_draw import SEVEN, UI_SECONDS, stroke
from test_lab_app import PAGE_TIMEOUT, STOPPED, ctrl_c, end, isolated_jupyter, start_lab

pytestmark = pytest.mark.browser

# Voila's lab template links Font Awesome's stylesheets on jsDelivr (templates/lab/index.html.j2); its own bundle
# carries the same icons, so the page works without them. They are blocked like any other address outside
# 127.0.0.1, and they are the only ones the page may try.
VOILA_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/fontawesome-free@[^/]+/css/[\w.-]+\.css$")


@pytest.fixture(scope="module")
def app(tmp_path_factory, cli, stages):
    "The lab app on a folder holding two runs, served by `digits-tutorial lab`; yields (address, folder, process)."
    need_chromium_and_playwright()
    base = tmp_path_factory.mktemp("browser-app")
    out = base / "results"
    with stages.stage("two runs made by digits-tutorial run"):
        for args in ([], ["--model", "knn", "--param", "k=3"]):
            done = cli("run", "--out", out, "--quiet", *args)
            assert done.returncode == 0, done.stderr
    with stages.stage("digits-tutorial lab prints its address"):
        process, url = start_lab(out, _free_port(), isolated_jupyter(base / "jupyter"))
    try:
        yield url, out, process
    finally:
        end(process)


@pytest.fixture(scope="module")
def app_page(app, stages):
    "A Chromium page that may reach the app's server only; yields (page, addresses it tried elsewhere)."
    url, _, _ = app
    with local_chromium_page(url.rstrip("/"), stages) as found:
        yield found


def runs_listed(cli, out) -> list[dict]:
    "The runs of `out` as `digits-tutorial runs --out OUT --json` lists them."
    done = cli("runs", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_lab_app_in_chromium(app, app_page, cli, root, stages):
    url, out, process = app
    page, elsewhere = app_page
    shots = Shots(page, root / "test-artifacts" / "browser-app")
    try:
        use_the_app(page, url, out, cli, shots, stages)
        stages.end()
    except BaseException as err:
        stages.end(failed=True)
        try: shots("failure")
        except Exception: pass
        if hasattr(err, "add_note"): err.add_note(stages.summary())
        raise
    assert all(VOILA_CDN.match(a) for a in elsewhere), f"the page tried to reach other addresses: {elsewhere}"
    with stages.stage("Ctrl-C stops the command"):
        status, err, _ = ctrl_c(process)
    assert (status, err) == (0, STOPPED)


def use_the_app(page, url, out, cli, shots, stages):
    from playwright.sync_api import expect
    before = runs_listed(cli, out)
    assert [r["model"] for r in before] == ["logistic", "knn"]

    stages.begin("the page loads, Voila runs the app's notebook, the lab shows")
    start = time.monotonic()
    page.goto(url, timeout=PAGE_TIMEOUT * 1000)
    fit = page.get_by_role("button", name=re.compile(r"^\W*Fit$"))  # the name has the icon's glyph before "Fit"
    # Voila shows a cell's failure as an error output (its traceback only with --show_tracebacks): fail on it at once
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .jp-RenderedText.jp-mod-error"
                         ).or_(page.get_by_text("There was an error when executing cell"))

    def lab_or_error():
        if error.count(): raise AssertionError(f"the app's notebook failed in the kernel:\n{error.first.inner_text()[-2000:]}")
        return fit.count() and fit.is_visible()
    wait_until(lab_or_error, PAGE_TIMEOUT, "the lab did not show in the app", interval=0.5)
    canvas = page.locator("canvas.digits-draw-canvas")
    lab = page.locator(".widget-vbox").filter(has=fit).filter(has=canvas).last
    expect(lab).to_have_count(1)
    print(f"[browser-app] the lab showed {time.monotonic() - start:.1f} s after the page was asked for")
    expect(page.get_by_role("heading", name="Digits lab")).to_be_visible()
    # no code: no editor, no input prompt, none of the app notebook's source
    expect(page.locator(".jp-InputArea-editor, .cm-editor, .CodeMirror, .jp-InputPrompt")).to_have_count(0)
    assert "open_lab" not in page.locator("body").inner_text()

    stages.begin("1. it opens on the latest run: k-nearest neighbours, k=3, selected in the list")
    latest = before[-1]
    expect(lab.get_by_text("No results yet", exact=False)).to_have_count(0)
    matrix = lab.locator("button.widget-button[title^='true ']")  # a cell has its title once a run is drawn
    expect(matrix).to_have_count(100)
    expect(labelled(lab, "widget-dropdown", "Model").locator("select")).to_have_value("k-nearest neighbours")
    expect(labelled(lab, "widget-slider", "k").locator(".widget-readout")).to_have_text("3")
    runs_list = labelled(lab, "widget-dropdown", "Earlier runs").locator("select")
    expect(runs_list.locator("option")).to_have_count(2)
    selected = runs_list.evaluate("s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''")
    assert "k-nearest neighbours (k=3)" in selected.replace("\u00a0", " "), selected
    expect(lab.get_by_text(f"Run {latest['id']}: k-nearest neighbours (k=3), fitted in", exact=False)).to_be_visible()
    validation = latest["accuracy"]["validation"]
    assert f"Validation Data {validation:.1%}" in html_text(lab, "Accuracy")
    shots("opened-on-latest-run", lab)

    stages.begin("2. another model, Fit: a new run, listed by digits-tutorial runs")
    labelled(lab, "widget-dropdown", "Model").locator("select").select_option(label="Support vector classifier (RBF kernel)")
    expect(lab.get_by_text("Results are out of date", exact=False)).to_be_visible()
    accuracy_before = html_text(lab, "Accuracy")
    fit.click()
    # the screen first: the new run's status and accuracies; its record in the store after (no clock here: the benchmark's)
    status = lab.get_by_text(re.compile(r"^Run \S+: Support vector classifier \(RBF kernel\) \(.*\), fitted in"))
    expect(status).to_be_visible(timeout=FIT_TIMEOUT * 1000)
    wait_until(lambda: html_text(lab, "Accuracy") != accuracy_before, FIT_TIMEOUT, "the accuracy did not change after Fit")
    expect(runs_list.locator("option")).to_have_count(3)
    expect(fit).to_be_enabled()
    after = wait_until(lambda: (listed := runs_listed(cli, out)) and len(listed) == 3 and listed, FIT_TIMEOUT,
                       "the new run was not recorded", interval=0.5)
    assert [r["id"] for r in after[:2]] == [r["id"] for r in before] and after[2]["model"] == "svc", after
    assert status.inner_text().startswith(f"Run {after[2]['id']}:")
    assert f"Validation Data {after[2]['accuracy']['validation']:.1%}" in html_text(lab, "Accuracy")
    expect(lab.locator(".digits-lab-recording")).to_have_count(0, timeout=FIT_TIMEOUT * 1000)  # the status says: recorded
    # the last thing a fit redraws is the gallery: when it asks for a click, the whole lab shows the new fit
    expect(lab.get_by_text("Click a cell of the matrix to see its digits.")).to_be_visible()
    shots("fitted-svc", lab)

    stages.begin("3. a mistake clicked: its digits in the gallery")
    cells = wait_until(lambda: (c := cell_titles(matrix)) and len(c) == 100 and c, UI_TIMEOUT / 1000, "no matrix")
    mistakes = sorted(((n, i, j) for (i, j), (n, _) in cells.items() if i != j and n > 0), reverse=True)
    assert mistakes, f"no mistake at all in the validation matrix: {cells}"
    n, i, j = mistakes[0]
    lab.locator(f"button.widget-button[title='true {i}, predicted {j}: {n} digits']").click()
    title = lab.locator(".widget-html-content").filter(has_text=re.compile(r"^\s*\d+ digits? of the "))
    expect(title).to_have_text(f"{n} digit{'s' if n != 1 else ''} of the Validation Data with true class {i}, predicted {j}")
    expect(lab.locator("table.digits-provenance tr.digit-row")).to_have_count(n)
    image = lab.locator("img.widget-image")
    wait_until(lambda: image.evaluate("e => e.complete && e.naturalWidth > 0"), UI_TIMEOUT / 1000, "the gallery did not load")
    shots(f"cell-true{i}-predicted{j}", lab)

    stages.begin("4. a 7 drawn on the pad with the mouse, read by the run on show")
    canvas.scroll_into_view_if_needed()
    stroke(page, canvas, SEVEN)
    shown = lab.locator(".digits-draw-prediction")
    # the pad reads while the pen moves, so its first readings may be of the stroke's beginning (the 7's bar alone can read
    # as a 4, as CI once saw); the pictures come when the pen rests, with the reading of the whole stroke
    rested = lab.locator("img.digits-draw-figure[alt^='the drawing, its 32x32 bitmap']")
    expect(rested).to_be_visible(timeout=UI_SECONDS * 1000)
    expect(shown).to_have_text(re.compile(r"^\d$"))
    assert shown.inner_text() == "7", f"the SVC run read the mouse's 7 as {shown.inner_text()}"
    shots("drawn-7-read", lab)
