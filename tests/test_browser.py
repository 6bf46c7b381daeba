"""End to end: the lab in a real JupyterLab, driven through Playwright and Debian's Chromium as a learner would.

The test makes a results folder as the lab lesson leaves one (the README's main job, then three runs recorded through the
library: k-nearest neighbours on a split of its own, logistic regression again, and an SVC with C=3 on 70/15/15), starts
JupyterLab on 127.0.0.1 in a folder of its own (no news, no update check, no extension manager, settings of its own),
opens a notebook of two cells that shows the lab on that folder (`open_lab`, then the first run, as the lesson's last
cells leave it) and uses the lab as a learner would, with the mouse (and the arrow keys on a slider's handle, and typing
into a slider's readout): another model, another setting, another split, **Fit**, another split shown, a click on a
mistake of the confusion matrix, and its digits in the gallery. Screenshots of every step go to `test-artifacts/browser/`
(git-ignored) for a person to look at.

The lessons themselves are not run here: CI runs each of them once, in the install phase (`test_readme_install.py`),
where the lab lesson's cells drive the same widgets from Python.

Run it with `python3 -m pytest tests/test_browser.py -m browser`. Every timeout is multiplied by the environment
variable `DIGITS_TUTORIAL_TIMEOUT_SCALE` (default 1; say 3 on a slow machine), and the test prints how long each
stage took (and adds it to a failure's report), so that a slow machine is diagnosed rather than guessed at.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
NOTEBOOK = "lab.ipynb"  # written by the test, beside the folder it shows


def _timeout_scale() -> float:
    "The factor of every timeout, from DIGITS_TUTORIAL_TIMEOUT_SCALE (default 1)."
    raw = os.environ.get("DIGITS_TUTORIAL_TIMEOUT_SCALE", "1")
    try: scale = float(raw)
    except ValueError: scale = float("nan")
    if not 0 < scale < float("inf"):
        raise ValueError(f"DIGITS_TUTORIAL_TIMEOUT_SCALE is {raw!r}, expected a positive number (1 is the default)")
    return scale


TIMEOUT_SCALE = _timeout_scale()
SERVER_START_TIMEOUT = 60 * TIMEOUT_SCALE     # seconds for JupyterLab to answer /api/status
PAGE_TIMEOUT = 60 * TIMEOUT_SCALE             # seconds for the page to load, and for the lab to show after Run All
OPEN_TIMEOUT = 90 * TIMEOUT_SCALE             # seconds for the lesson to open with its kernel idle
RUN_ALL_TIMEOUT = 240 * TIMEOUT_SCALE         # seconds for "Run All Cells" to finish and the lab to show
FIT_TIMEOUT = 90 * TIMEOUT_SCALE              # seconds for one fit pressed in the browser
UI_TIMEOUT = 30_000 * TIMEOUT_SCALE           # milliseconds for any other change to show in the page
EXPECT_TIMEOUT = 5_000 * TIMEOUT_SCALE        # milliseconds for each `expect` (Playwright's default, scaled)
SCALE_HINT = f"timeouts x{TIMEOUT_SCALE:g}: set DIGITS_TUTORIAL_TIMEOUT_SCALE to change them"
VIEWPORT = {"width": 1400, "height": 1600}
CELL_TITLE = re.compile(r"^true (\d), predicted (\d): (\d+) digits$")


# --- how long each stage took ---------------------------------------------------------------------------

class Stages:
    "How long each stage of the test took: each printed as it ends, and a summary for the end or for a failure."

    def __init__(self):
        self.done, self.current, self.start = [], None, 0.0

    def begin(self, name: str):
        "End the stage in progress, if any, and start the stage `name`."
        self.end()
        self.current, self.start = name, time.monotonic()

    def end(self, failed=False):
        if self.current is None: return
        took = time.monotonic() - self.start
        self.done.append((self.current, took, failed))
        print(f"[browser] {self.current}: {took:.1f} s{' (FAILED)' if failed else ''}", flush=True)
        self.current = None

    @contextmanager
    def stage(self, name: str):
        "Time the block as stage `name` (marked failed if it raises)."
        self.begin(name)
        try: yield
        except BaseException:
            self.end(failed=True)
            raise
        self.end()

    def summary(self) -> str:
        lines = [f"  {name:<52}{took:7.1f} s{'  FAILED' if failed else ''}" for name, took, failed in self.done]
        return "\n".join([f"stages of the browser test ({SCALE_HINT}):", *lines])


@pytest.fixture(scope="module")
def stages():
    stages = Stages()
    yield stages
    print(stages.summary(), flush=True)


# --- JupyterLab, on a folder of the test's own -------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _stop(process: subprocess.Popen, grace=15):
    "Stop the server we started: SIGTERM (it shuts its kernels down), then SIGKILL to it and its own process group."
    if process.poll() is None:
        process.terminate()
        try: process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    try: os.killpg(process.pid, signal.SIGKILL)  # a kernel left behind by a killed server: same group, started by us
    except (ProcessLookupError, PermissionError): pass


def _missing(reason: str):
    "Skip for want of `reason`, except in CI (`CI` set), where .ci/run installs it: there a skip would hide a failure."
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run installs it, so in CI this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def need_chromium_and_playwright():
    "Fail (in CI) or skip (elsewhere) with one line if Debian's Chromium or Playwright for Python is missing."
    if not CHROMIUM:
        _missing("Debian's Chromium is not installed (no /usr/bin/chromium, no `chromium` on PATH)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        _missing(f"Playwright for Python is not installed ({err})")


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory, stages):
    "A JupyterLab serving an empty folder on 127.0.0.1; yields (address of a notebook there, without its name; the folder)."
    need_chromium_and_playwright()
    base = tmp_path_factory.mktemp("jupyterlab")
    work = base / "work"
    work.mkdir()
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")}
    for d in dirs.values(): d.mkdir()
    # nothing may leave 127.0.0.1: no news feed, no update check, no PyPI extension manager
    _write_json(dirs["config"] / "jupyter_server_config.json",
                {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                            "extension_manager": "readonly"}})
    _write_json(dirs["settings"] / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    # every cell stays in the page, so that the test sees the whole notebook
    _write_json(dirs["settings"] / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings", {"windowingMode": "none"})
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"]),
           "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]), "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
           "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_CONFIG_PATH", None)
    port, token = _free_port(), os.urandom(16).hex()
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--ServerApp.open_browser=False", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0: cmd.append("--ServerApp.allow_root=True")
    log_path = base / "jupyterlab.log"
    log = open(log_path, "w")
    process = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        stages.begin("JupyterLab starts and answers /api/status")
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                stages.end(failed=True)
                pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200: break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                stages.end(failed=True)
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT:g} s ({SCALE_HINT}):\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        stages.end()
        yield f"http://127.0.0.1:{port}/lab/tree/{{}}?token={token}", work
    finally:
        _stop(process)
        log.close()


# --- Chromium -----------------------------------------------------------------------------------------------

@contextmanager
def local_chromium_page(origin, stages):
    "A headless Chromium page that may reach `origin` only (and data: and blob: addresses); yields (page, addresses blocked)."
    from playwright.sync_api import expect, sync_playwright
    blocked = []

    def only_local(route):
        address = route.request.url
        if address.startswith((origin + "/", "data:", "blob:")): route.continue_()
        else:
            blocked.append(address)
            route.abort()

    with sync_playwright() as p:
        with stages.stage("Chromium starts"):
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(UI_TIMEOUT)
            expect.set_options(timeout=EXPECT_TIMEOUT)
            context.route("**/*", only_local)
            yield context.new_page(), blocked
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser_page(jupyter_lab, stages):
    "A Chromium page that may reach the JupyterLab server only; yields (page, list of blocked addresses)."
    url, _ = jupyter_lab
    with local_chromium_page(re.match(r"^(http://127\.0\.0\.1:\d+)/", url).group(1), stages) as found:
        yield found


# --- helpers on the page ------------------------------------------------------------------------------------

class Shots:
    "Screenshots by step: the whole window and the lab widget, in `test-artifacts/browser/`."

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.n = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("[0-9][0-9]-*.png"): old.unlink()  # only this run's pictures

    def __call__(self, step: str, widget=None):
        self.n += 1
        name = f"{self.n:02d}-{step}"
        if widget is not None: widget.scroll_into_view_if_needed()
        self.page.screenshot(path=self.folder / f"{name}-page.png", full_page=True)
        if widget is not None:
            # make the window tall enough for the whole widget, so that the notebook does not clip it
            height = int(widget.bounding_box()["height"]) + 200
            self.page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
            try: widget.screenshot(path=self.folder / f"{name}-lab.png")
            finally: self.page.set_viewport_size(VIEWPORT)


def wait_until(condition, timeout, message, interval=0.25):
    "Poll `condition()` until it returns a true value (returned), or fail after `timeout` seconds with `message`."
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value: return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:g} s; {SCALE_HINT})")
        time.sleep(interval)


def labelled(lab, kind: str, label: str):
    "The ipywidget of css class `kind` (e.g. widget-slider) whose description is exactly `label`."
    return lab.locator(f".{kind}").filter(
        has=lab.page.locator("label.widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))


def html_text(lab, label: str) -> str:
    "The text of the HTML widget described as `label`."
    return labelled(lab, "widget-html", label).locator(".widget-html-content").inner_text().strip()


def cell_titles(matrix_buttons) -> dict:
    "{(true, predicted): (count in the title, text of the button)} for the 100 cells of the confusion matrix."
    cells = matrix_buttons.evaluate_all("els => els.map(e => [e.getAttribute('title') || '', e.innerText.trim()])")
    found = {}
    for title, text in cells:
        m = CELL_TITLE.match(title)
        if m: found[int(m[1]), int(m[2])] = (int(m[3]), text)
    return found


def accept_dialogs(page):
    "Accept any dialog JupyterLab opens (e.g. Select Kernel: the one it proposes, Python 3)."
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()


def run_all_cells(page, lesson: Path, shots, stages):
    "Wait for the notebook and its kernel, run all its cells from the Run menu, wait until every cell ran; fail on any error."
    cells = json.loads(lesson.read_text())["cells"]
    n_cells, n_code = len(cells), sum(c["cell_type"] == "code" for c in cells)
    panel = page.locator(".jp-NotebookPanel").first
    notebook = panel.locator(".jp-Notebook")
    indicator = panel.locator(".jp-Notebook-ExecutionIndicator").first
    kernel_name = panel.locator(".jp-Toolbar-kernelName").first

    def ready():
        accept_dialogs(page)
        return (notebook.locator(".jp-Cell").count() == n_cells and kernel_name.count()
                and kernel_name.inner_text().strip() not in ("", "No Kernel")
                and indicator.get_attribute("data-status") == "idle")
    wait_until(ready, OPEN_TIMEOUT, f"{lesson.name} did not open with its {n_cells} cells and an idle kernel")
    shots("notebook-opened")

    stages.begin("Run All Cells, until every cell ran")
    page.locator(".lm-MenuBar-item").filter(has_text=re.compile(r"^\s*Run\s*$")).click()
    page.locator(".lm-Menu-content .lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^\s*Run All Cells\s*$"))).click()

    prompts = notebook.locator(".jp-CodeCell .jp-InputArea-prompt")
    # JupyterLab renders a traceback as stderr text; Run All stops there, so fail at once rather than time out
    errors = notebook.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').filter(
        has_text="Traceback")

    def all_ran():
        accept_dialogs(page)
        if errors.count():
            raise AssertionError(f"a cell of {lesson.name} failed:\n{errors.first.inner_text()[-3000:]}")
        # a fresh kernel numbers the cells 1..n in order: the last one shows [n] when all of them ran
        return (prompts.count() == n_code and prompts.last.inner_text().strip() == f"[{n_code}]:"
                and indicator.get_attribute("data-status") == "idle")
    wait_until(all_ran, RUN_ALL_TIMEOUT, f"Run All Cells did not finish the {n_code} code cells of {lesson.name}", interval=1)


# --- the notebook and the folder it shows -------------------------------------------------------------------

def write_notebook(path: Path, *cells: str) -> Path:
    "A notebook of code `cells` for the python3 kernel, at `path`."
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": [
              {"cell_type": "code", "id": f"cell{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": code}
              for i, code in enumerate(cells)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    _write_json(path, nb)
    return path


def lab_folder(one_run: Path, folder: Path) -> Path:
    """A copy of the README's main job's folder (logistic regression on the store's own split) with the runs the lab
    lesson adds, recorded through the library: kNN (k=3) on 80/10/10, logistic regression again, an SVC (C=3) on 70/15/15."""
    from digits_tutorial.runs import run_model
    from digits_tutorial.store import close_store, connect_store
    shutil.copytree(one_run, folder)
    store = connect_store(folder / "store.sql")
    try:
        run_model(store, "knn", {"k": 3}, fractions=(0.8, 0.1, 0.1))
        run_model(store)
        run_model(store, "svc", {"C": 3, "gamma": 0.001}, fractions=(0.7, 0.15, 0.15))
    finally:
        close_store(store)
    return folder


# --- the test -----------------------------------------------------------------------------------------------

def test_lab_in_jupyterlab(jupyter_lab, browser_page, one_run, root, stages):
    url, work = jupyter_lab
    page, blocked = browser_page
    shots = Shots(page, root / "test-artifacts" / "browser")
    try:
        with stages.stage("a folder with four runs, and a notebook that shows its lab"):
            lab_folder(one_run, work / "lab")
            notebook = write_notebook(work / NOTEBOOK, "from digits_tutorial.widgets import open_lab",
                                      'lab = open_lab("lab")\nlab.show_run(lab.state.runs()[0][1])  # the first run, as the lesson leaves it\nlab')
        drive_the_lab(page, url.format(NOTEBOOK), notebook, shots, stages)
        stages.end()
    except BaseException as err:
        stages.end(failed=True)
        try: shots("failure")
        except Exception: pass
        if hasattr(err, "add_note"): err.add_note(stages.summary())  # in the failure's report, whatever -s says
        raise
    assert not blocked, f"the page tried to reach other addresses than the local JupyterLab: {blocked}"


def drive_the_lab(page, url, lesson, shots, stages):
    from playwright.sync_api import expect
    stages.begin("the notebook opens with an idle kernel")
    page.goto(url, timeout=PAGE_TIMEOUT * 1000)
    run_all_cells(page, lesson, shots, stages)

    stages.begin("the lab shows the folder's first run")
    fit = page.get_by_role("button", name=re.compile(r"^\W*Fit$"))  # the name has the icon's glyph before "Fit"
    fit.wait_for(state="visible", timeout=PAGE_TIMEOUT * 1000)
    lab = page.locator(".jp-OutputArea-output > .widget-vbox").filter(has=fit)
    expect(lab).to_have_count(1)
    matrix = lab.locator("button.widget-button[title^='true ']")
    expect(matrix).to_have_count(100)
    # the first run: logistic regression on the store's own split; the list of earlier runs holds the folder's four
    expect(labelled(lab, "widget-dropdown", "Model").locator("select")).to_have_value("Logistic regression")
    assert html_text(lab, "Split used").startswith("the store's split"), html_text(lab, "Split used")
    expect(labelled(lab, "widget-toggle-buttons", "Split shown").locator("button.mod-active")).to_have_text("Validation Data")
    runs_list = labelled(lab, "widget-dropdown", "Earlier runs").locator("select")
    n_runs = runs_list.locator("option").count()
    assert n_runs == 4, f"{n_runs} earlier runs listed, not the folder's four"
    accuracy_before = html_text(lab, "Accuracy")
    assert accuracy_before.count("%") == 3, accuracy_before
    shots("after-run-all", lab)

    stages.begin("1. another model: k-nearest neighbours")
    # 1. another model: k-nearest neighbours; its setting k starts at 5
    labelled(lab, "widget-dropdown", "Model").locator("select").select_option(label="k-nearest neighbours")
    k = labelled(lab, "widget-slider", "k")
    k.wait_for(state="visible")
    expect(labelled(lab, "widget-slider", "C")).to_have_count(0)
    expect(k.locator(".widget-readout")).to_have_text("5")
    expect(lab.get_by_text("Results are out of date")).to_be_visible()
    assert html_text(lab, "Accuracy") == accuracy_before  # nothing refitted yet
    shots("model-knn-out-of-date", lab)

    stages.begin("2. k from 5 to 3 with the arrow keys")
    # 2. k from 5 to 3: click the slider's handle, then two steps left with the arrow key
    handle = k.locator(".noUi-handle")
    handle.click()
    handle.press("ArrowLeft")
    handle.press("ArrowLeft")
    expect(k.locator(".widget-readout")).to_have_text("3")
    expect(handle).to_have_attribute("aria-valuenow", re.compile(r"^3(\.0+)?$"))

    stages.begin("3. the train fraction typed in: 0.7")
    # 3. the split: train fraction 0.7 typed into the slider's readout; the others share the rest as they did
    train = labelled(lab, "widget-slider", "Train fraction")
    old_counts = html_text(lab, "Digits per split")
    box = train.locator(".widget-readout")
    box.click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("0.7")
    page.keyboard.press("Enter")
    expect(box).to_have_text("0.70")
    for name in ("Validation fraction", "Test fraction"):
        expect(labelled(lab, "widget-slider", name).locator(".widget-readout")).to_have_text("0.15")
    wait_until(lambda: html_text(lab, "Digits per split") != old_counts, UI_TIMEOUT / 1000,
               f"the digits per split stayed {old_counts!r} after the train fraction moved")
    expect(lab.get_by_text("Results are out of date")).to_be_visible()
    assert html_text(lab, "Accuracy") == accuracy_before
    shots("k3-train-0.7-out-of-date", lab)

    stages.begin("4. Fit, and the lab redrawn")
    # 4. Fit: the accuracy changes, the status names the new fit, and the selected cell of before is cleared
    fit.click()
    wait_until(lambda: html_text(lab, "Accuracy") != accuracy_before, FIT_TIMEOUT,
               f"the accuracy stayed {accuracy_before!r} after Fit")
    expect(lab.get_by_text(re.compile(r"k-nearest neighbours \(k=3\), fitted in"))).to_be_visible(timeout=FIT_TIMEOUT * 1000)
    assert html_text(lab, "Split used").startswith("drawn for this run: 0.7/0.15/0.15"), html_text(lab, "Split used")
    wait_until(lambda: runs_list.locator("option").count() == n_runs + 1, UI_TIMEOUT / 1000, "the new run is not in the list")
    expect(fit).to_be_enabled()
    accuracy_after = html_text(lab, "Accuracy")
    assert re.fullmatch(r"Train Data [\d.]+% · Validation Data [\d.]+% · Test Data [\d.]+%", accuracy_after), accuracy_after
    expect(lab.get_by_text("Results are out of date")).to_have_count(0)
    # the last thing a fit redraws is the gallery: when it asks for a click, the whole lab shows the new fit
    expect(lab.get_by_text("Click a cell of the matrix to see its digits.")).to_be_visible()
    expect(lab.locator("table.digits-provenance tr.digit-row")).to_have_count(0)
    shots("fitted-knn", lab)

    stages.begin("5. another split shown, in counts")
    # 5. another split shown, and counts rather than row percentages
    view = labelled(lab, "widget-toggle-buttons", "Split shown")
    shown = view.locator("button.mod-active").inner_text().strip()
    target = "Test Data" if shown != "Test Data" else "Validation Data"
    before = cell_titles(matrix)
    view.get_by_role("button", name=target, exact=True).click()
    expect(view.locator("button.mod-active")).to_have_text(target)
    values = labelled(lab, "widget-toggle-buttons", "Values")
    values.get_by_role("button", name="Counts", exact=True).click()
    expect(values.locator("button.mod-active")).to_have_text("Counts")
    split_size = int(re.search(rf"{target.split()[0].lower()} ([\d,]+)", html_text(lab, "Digits per split"))[1].replace(",", ""))

    def matrix_of_target():
        # the lab redraws the cells in order, so when all 100 show their counts the matrix of `target` is complete
        cells = cell_titles(matrix)
        return (len(cells) == 100 and cells != before and all(text == str(n) for n, text in cells.values())
                and sum(n for n, _ in cells.values()) == split_size and cells)
    cells = wait_until(matrix_of_target, UI_TIMEOUT / 1000, f"the matrix did not switch to the {target} in counts")
    assert cells == cell_titles(matrix)
    shots(f"split-shown-{target.split()[0].lower()}", lab)

    stages.begin("6. a mistake clicked, its digits in the gallery")
    # 6. click a mistake: an off-diagonal cell with N > 0 digits; the gallery shows those N digits
    mistakes = sorted(((n, i, j) for (i, j), (n, _) in cells.items() if i != j and n > 0), reverse=True)
    assert mistakes, f"no mistake at all in the {target} matrix: {cells}"
    n, i, j = mistakes[0]
    cell = lab.locator(f"button.widget-button[title='true {i}, predicted {j}: {n} digits']")
    cell.click()
    title = lab.locator(".widget-html-content").filter(has_text=re.compile(r"^\s*\d+ digits? of the "))
    expect(title).to_have_text(f"{n} digit{'s' if n != 1 else ''} of the {target} with true class {i}, predicted {j}")
    rows = lab.locator("table.digits-provenance tr.digit-row")
    expect(rows).to_have_count(n)
    expect(rows.first.locator("td").first).to_have_text("1")
    expect(cell).to_have_css("font-weight", re.compile(r"^(bold|700)$"))
    image = lab.locator("img.widget-image")
    expect(image).to_be_visible()
    wait_until(lambda: image.evaluate("e => e.complete && e.naturalWidth > 0"), UI_TIMEOUT / 1000, "the gallery image did not load")
    shots(f"cell-true{i}-predicted{j}-gallery", lab)

    stages.begin("7. an earlier run picked from the list, shown without a fit")
    # 7. the folder's SVC run (C=3, on 70/15/15), picked from "Earlier runs": its settings, split and matrix come back
    labels = runs_list.locator("option").all_inner_texts()
    # ipywidgets shows a dropdown's labels with non-breaking spaces
    svc = [text for text in labels if "Support vector classifier" in text.replace("\u00a0", " ")]
    assert len(svc) == 1, labels
    before = cell_titles(matrix)
    runs_list.select_option(label=svc[0])
    expect(labelled(lab, "widget-dropdown", "Model").locator("select")).to_have_value("Support vector classifier (RBF kernel)")
    expect(lab.get_by_text(re.compile(r"Support vector classifier \(RBF kernel\) \(C=3, gamma=0.001\), fitted in"))).to_be_visible()
    expect(labelled(lab, "widget-slider", "C").locator(".widget-readout")).to_have_text(re.compile(r"^3(\.0+)?$"))
    wait_until(lambda: html_text(lab, "Split used").startswith("drawn for this run: 0.7/0.15/0.15"), UI_TIMEOUT / 1000,
               "the split of the SVC run is not shown")
    shown = view.locator("button.mod-active").inner_text().strip()
    size = int(re.search(rf"{shown.split()[0].lower()} ([\d,]+)", html_text(lab, "Split used"))[1].replace(",", ""))
    svc_accuracy = re.search(rf"{shown} ([\d.]+)%", html_text(lab, "Accuracy"))[1]

    def matrix_of_the_run():
        # the lab redraws the cells one by one, and both runs' splits hold the same digits (the same row sums), so a
        # matrix half redrawn has the right total: wait until its diagonal gives the run's recorded accuracy
        cells = cell_titles(matrix)
        right = sum(n for (i, j), (n, _) in cells.items() if i == j)
        return (len(cells) == 100 and cells != before and sum(n for n, _ in cells.values()) == size
                and f"{right / size:.1%}" == f"{svc_accuracy}%" and cells)  # the matrix is the run's, as recorded
    wait_until(matrix_of_the_run, UI_TIMEOUT / 1000, f"the matrix did not become the SVC run's ({svc_accuracy}% right)")
    assert runs_list.locator("option").count() == n_runs + 1  # nothing was fitted
    expect(lab.get_by_text("Results are out of date")).to_have_count(0)
    shots("earlier-run-svc", lab)
