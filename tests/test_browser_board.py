"""End to end: the teacher's board, `digits-tutorial lab --board`, as a teacher meets it in Debian's Chromium driven by
Playwright, while a learner answers; and the board's Voila server ending the kernels of pages nobody keeps open.

The class store is on a real MariaDB server this module starts (a temporary data folder, a free port of 127.0.0.1); ada
makes a run with `digits-tutorial run`; the board is the real command, `digits-tutorial lab --board --no-browser --port P`,
with the class store's address in its environment. The page shows ada's best run and an empty grid; grace, in a process of
her own, answers an exercise wrong, then right; without a reload, the page shows her solved exercise within 10 s of her
process's end (when her verdicts are in the store). Ctrl-C stops the command. Screenshots go to
`test-artifacts/browser-board/` (git-ignored). Other timeouts scale with `DIGITS_TUTORIAL_TIMEOUT_SCALE`.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from test_browser import Shots, _free_port, local_chromium_page, need_chromium_and_playwright, stages, wait_until  # noqa: F401
from test_lab_app import PAGE_TIMEOUT, START_TIMEOUT, ctrl_c, end, family, isolated_jupyter, kill_family
from test_progress import LEARNER

from conftest import local_mariadb
from digits_tutorial.classroom import STORE_VARIABLE

pytestmark = pytest.mark.browser
SCRIPT = Path(sys.executable).with_name("digits-tutorial")
NEWLY_SOLVED_SECONDS = 10  # the bound: a newly solved exercise on the page within 10 s (the page asks every 3 s)


@pytest.fixture(scope="module")
def class_store(tmp_path_factory):
    "A class store on a MariaDB server of this module's own, holding ada's run; yields (address, folder)."
    base = tmp_path_factory.mktemp("browser-board")
    with local_mariadb("board") as server:
        env = dict(os.environ, MPLBACKEND="Agg", **{STORE_VARIABLE: server.url()})
        done = subprocess.run([str(SCRIPT), "run", "--out", str(base / "ada"), "--learner", "ada", "--quiet"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        yield server.url(), base


def start_board(out: Path, port: int, env: dict) -> tuple[subprocess.Popen, str]:
    "Start `digits-tutorial lab --board --out OUT --no-browser --port PORT`; wait for the line it prints; (process, line)."
    process = subprocess.Popen([str(SCRIPT), "lab", "--board", "--out", str(out), "--no-browser", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline() if ready else ""
    if not line:
        end(process)
        pytest.fail(f"digits-tutorial lab --board printed nothing within {START_TIMEOUT:g} s: {process.communicate()[1][-3000:]}")
    return process, line


def test_the_board_shows_a_newly_solved_exercise_without_a_reload(class_store, stages, root):
    from playwright.sync_api import expect
    need_chromium_and_playwright()
    url, base = class_store
    port = _free_port()
    env = {**isolated_jupyter(base / "jupyter"), STORE_VARIABLE: url}
    with stages.stage("digits-tutorial lab --board prints its address"):
        process, line = start_board(base / "teacher", port, env)
    try:
        shown = line.replace(make_url(url).password, "<the password>")
        assert line.startswith("the board of mysql+pymysql://teacher:***@127.0.0.1:") and line.endswith(
            f": http://127.0.0.1:{port}/ (Ctrl-C stops it)\n"), shown
        with local_chromium_page(f"http://127.0.0.1:{port}", stages) as (page, elsewhere):
            shots = Shots(page, root / "test-artifacts" / "browser-board")
            with stages.stage("the page loads, Voila runs the board's notebook"):
                page.goto(f"http://127.0.0.1:{port}/", timeout=PAGE_TIMEOUT * 1000)
                expect(page.locator("table.digits-board tr[data-learner='ada']")).to_be_visible(timeout=PAGE_TIMEOUT * 1000)
            expect(page.get_by_role("heading", name="Class board")).to_be_visible()
            assert "open_board" not in page.locator("body").inner_text()  # no code
            expect(page.locator("table.digits-board tr[data-learner='ada'] td").first).to_have_text("1")  # rank 1
            expect(page.locator("table.digits-progress tr[data-learner='ada']")).to_be_visible()  # a learner with a run: not yet
            expect(page.locator("tr[data-learner='grace']")).to_have_count(0)
            page.evaluate("window.notReloaded = true")  # a reload would lose it
            shots("before-grace-answers")

            with stages.stage("grace answers wrong, then right, in a process of her own"):
                learner = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_TUTORIAL_")}
                learner.update({STORE_VARIABLE: url, "DIGITS_TUTORIAL_LEARNER": "grace", "HOME": str(base / "grace")})
                done = subprocess.run([sys.executable, "-c", LEARNER, json.dumps([["check_recall_of_eights", "wrong"],
                                                                                   ["check_recall_of_eights", "right"]])],
                                      capture_output=True, text=True, env=learner, timeout=300)
                assert (done.returncode, done.stdout, done.stderr) == (0, "Feedback False\nFeedback True\n", "")
            kept = time.monotonic()  # her process has ended: her verdicts are in the store
            with stages.stage(f"the page shows it, within {NEWLY_SOLVED_SECONDS} s"):
                cell = page.locator("tr[data-learner='grace'] td[title^='grace, check_recall_of_eights (06_evaluate): solved at']")
                expect(cell).to_have_text("✓2", timeout=NEWLY_SOLVED_SECONDS * 1000)
            print(f"[browser-board] grace's solved exercise showed {time.monotonic() - kept:.1f} s after her verdicts were kept")
            assert page.evaluate("window.notReloaded") is True
            shots("grace-solved")
            assert not elsewhere or all("fontawesome" in a for a in elsewhere), elsewhere
        with stages.stage("Ctrl-C stops the command"):
            status, err, _ = ctrl_c(process)
        assert (status, err) == (0, "digits-tutorial: board stopped\n")
    finally:
        end(process)


def test_the_board_ends_the_kernels_of_pages_nobody_keeps_open(tmp_path, monkeypatch):
    """Pages fetched and left (as `curl` does): each starts a kernel, and Voila's culler, which the board's server turns on as
    the lab's does, ends each once it has been idle, with no page connected, for longer than `kernel_timeout`."""
    from digits_tutorial.widgets import BoardServer
    for name, value in isolated_jupyter(tmp_path / "jupyter").items(): monkeypatch.setenv(name, value)
    monkeypatch.setenv("DIGITS_TUTORIAL_PROGRESS", str(tmp_path / "progress.sql"))  # a learner alone, nothing answered yet
    monkeypatch.delenv(STORE_VARIABLE, raising=False)
    processes = []
    with BoardServer(tmp_path / "results", kernel_timeout=3) as server:
        try:
            for _ in range(2):
                with urllib.request.urlopen(server.url, timeout=PAGE_TIMEOUT) as response:
                    assert "application/vnd.jupyter.widget-view+json" in response.read().decode()
            def kernels():
                import psutil
                found = []
                for p in family(server.process):
                    try:
                        if "ipykernel" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE: found.append(p)
                    except psutil.NoSuchProcess: pass
                return found
            processes = family(server.process)
            assert len(kernels()) == 2  # a kernel per page
            wait_until(lambda: not kernels(), 60, "the kernels of the pages left were not ended")
            assert server.process.poll() is None  # the board goes on
        finally:
            kill_family(processes[1:] if server.process.poll() is not None else [])
