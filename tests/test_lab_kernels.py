"""The lab app's kernels (issue 26): Voila starts a kernel for every page it serves. With `digits-tutorial lab`, the kernel of a
page that nobody has open ends (Voila's own culling), while the kernel of a page that is open stays, however long its
learner leaves it alone. A real `digits-tutorial lab` (Voila), pages fetched as `curl` fetches them and one page open in
Debian's Chromium (Playwright); the kernels counted among the command's processes.
"""
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SCRIPT = Path(sys.executable).with_name("digits-tutorial")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
KERNEL_TIMEOUT = 3  # seconds, for the test; the command's default is three minutes
SCALE = float(os.environ.get("DIGITS_TUTORIAL_TIMEOUT_SCALE", "1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernels(process) -> list:
    "The kernels Voila runs for the lab command `process`: its descendants that are IPython kernels."
    import psutil
    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()): found.append(child)
        except psutil.NoSuchProcess: pass
    return found


def until(condition, timeout, what):
    "Wait until `condition()` holds; fail, saying `what`, after `timeout` seconds."
    deadline = time.monotonic() + timeout * SCALE
    while not condition():
        if time.monotonic() > deadline: pytest.fail(f"{what} within {timeout * SCALE:g} s")
        time.sleep(0.2)


@pytest.fixture
def lab(tmp_path, small):
    "`digits-tutorial lab --kernel-timeout 3` on a folder of 300 digits with a run, its Jupyter settings its own; stopped after."
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        (tmp_path / name).mkdir()
        env[name] = str(tmp_path / name)
    env.pop("DIGITS_TUTORIAL_STORE", None)
    out, port = tmp_path / "results", free_port()
    done = subprocess.run([str(SCRIPT), "run", "--out", str(out), "--data", str(small), "--quiet"], env=env, timeout=600)
    assert done.returncode == 0
    process = subprocess.Popen([str(SCRIPT), "lab", "--out", str(out), "--no-browser", "--port", str(port),
                                "--kernel-timeout", str(KERNEL_TIMEOUT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 120 * SCALE)
        assert ready and process.stdout.readline().startswith("the lab on "), "the lab printed no address"
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try: process.wait(60 * SCALE)
            except subprocess.TimeoutExpired:
                import psutil
                for p in [*psutil.Process(process.pid).children(recursive=True), process]:
                    try: p.kill()
                    except psutil.NoSuchProcess: pass


def test_a_page_nobody_has_open_leaves_no_kernel_and_an_open_page_keeps_its_own(lab):
    from playwright.sync_api import sync_playwright
    process, url = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url, timeout=120_000 * SCALE)
            page.wait_for_selector(".widget-button:has-text('Fit')", timeout=120_000 * SCALE)  # the lab, in an open page
            until(lambda: len(kernels(process)) == 1, 30, "the open page's kernel did not start")
            [open_kernel] = kernels(process)
            for _ in range(2):  # two loads as `curl` makes them (or a tab closed before its script ran): a kernel each
                with urllib.request.urlopen(url, timeout=120 * SCALE) as response:
                    assert "application/vnd.jupyter.widget-view+json" in response.read().decode()
            assert 2 <= len(kernels(process)) <= 3
            # they end; the open page's kernel, idle longer than they were, stays
            until(lambda: [k.pid for k in kernels(process)] == [open_kernel.pid], 4 * KERNEL_TIMEOUT + 10,
                  "the kernels of the pages nobody has open did not end")
            assert open_kernel.is_running()
            page.close()
        finally:
            browser.close()
    until(lambda: kernels(process) == [], 4 * KERNEL_TIMEOUT + 10, "the closed page's kernel did not end")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60 * SCALE)
    assert (process.returncode, err) == (0, "digits-tutorial: lab stopped\n")
