"""`digits-tutorial lab`: the lab served as a web app by a real Voila server, as a user starts and stops it from a shell.

The command runs as a process of its own, as in a terminal; the tests read the address it prints, ask the server for
the page, send Ctrl-C (SIGINT) and check what a user would see: one line on standard error, no traceback, exit status 0,
the port free again and no process left behind (Voila and its kernels). The browser test of the app
(`test_browser_app.py`) uses the same helpers. Timeouts scale with `DIGITS_TUTORIAL_TIMEOUT_SCALE`, as in
`test_browser.py`.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_browser import SCALE_HINT, TIMEOUT_SCALE, _free_port

from digits_tutorial.widgets import _port_is_free as port_is_free  # what the command checks before it starts

SCRIPT = Path(sys.executable).with_name("digits-tutorial")
START_TIMEOUT = 90 * TIMEOUT_SCALE   # seconds for the command to make a store if need be and print the address
PAGE_TIMEOUT = 120 * TIMEOUT_SCALE   # seconds for Voila to run the app's notebook and send the page
STOP_TIMEOUT = 30 * TIMEOUT_SCALE    # seconds for Ctrl-C to stop the server, its kernels and the command
STOPPED = "digits-tutorial: lab stopped\n"


def isolated_jupyter(base: Path) -> dict:
    "The environment of a lab command whose Jupyter configuration, runtime files and IPython profile are its own."
    dirs = {name: base / name for name in ("config", "runtime", "ipython")}
    for d in dirs.values(): d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
           "IPYTHONDIR": str(dirs["ipython"]), "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def start_lab(out: Path, port: int, env: dict, script: Path = SCRIPT) -> tuple[subprocess.Popen, str]:
    "Start `digits-tutorial lab --out OUT --no-browser --port PORT`; wait for the address it prints; (process, address)."
    process = subprocess.Popen([str(script), "lab", "--out", str(out), "--no-browser", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline() if ready else ""
    if not line:
        end(process)
        _, err = process.communicate(timeout=30)
        pytest.fail(f"digits-tutorial lab printed no address within {START_TIMEOUT:g} s ({SCALE_HINT}):\n{err[-3000:]}")
    expected = f"the lab on {out / 'store.sql'}: http://127.0.0.1:{port}/ (Ctrl-C stops it)\n"
    assert line == expected, line
    return process, f"http://127.0.0.1:{port}/"


def family(process) -> list:
    "The process and all its descendants (Voila, and its kernels), as psutil processes."
    import psutil
    parent = psutil.Process(process.pid)
    return [parent, *parent.children(recursive=True)]


def ctrl_c(process) -> tuple[int, str, float]:
    "Send Ctrl-C (SIGINT) to the command, as a terminal does; (exit status, standard error, seconds it took to stop)."
    start = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"Ctrl-C did not stop digits-tutorial lab within {STOP_TIMEOUT:g} s ({SCALE_HINT})")
    return process.returncode, err, time.monotonic() - start


def kill_family(processes):
    "Kill what is left of a failed test's processes (only those this test started)."
    for p in processes:
        try: p.kill()
        except Exception: pass


def end(process):
    "After a failure: kill the command and what it started (Voila, its kernels), which Ctrl-C would have stopped."
    if process.poll() is not None: return
    try: processes = family(process)
    except Exception: processes = [process]
    kill_family(reversed(processes))
    process.wait(30)


@pytest.fixture(scope="module")
def results(tmp_path_factory, one_run):
    "A folder as the README's first command leaves it (`digits-tutorial run --out results`): a copy of conftest's, for this file."
    return shutil.copytree(one_run, tmp_path_factory.mktemp("lab-app") / "results")


def test_the_lab_is_served_until_ctrl_c(results, tmp_path):
    port = _free_port()
    start = time.monotonic()
    process, url = start_lab(results, port, isolated_jupyter(tmp_path))
    started = time.monotonic() - start
    processes = []
    try:
        with urllib.request.urlopen(url, timeout=PAGE_TIMEOUT) as response:  # Voila runs the app's notebook in a kernel
            page = response.read().decode()
        served = time.monotonic() - start
        assert "application/vnd.jupyter.widget-view+json" in page  # the lab's widgets
        assert "open_lab" not in page and "from digits_tutorial" not in page  # and none of the code that made them
        processes = family(process)
        assert len(processes) >= 3, [p.cmdline() for p in processes]  # the command, Voila, the page's kernel
        status, err, took = ctrl_c(process)
        free = port_is_free(port)
        left = [p for p in processes if p.is_running() and p.status() != "zombie"]
    finally:
        end(process)
        kill_family(processes[1:])  # Voila and its kernels, if the command left them behind
    print(f"[lab app] address printed after {started:.1f} s, page served after {served:.1f} s, stopped in {took:.1f} s")
    assert (status, err) == (0, STOPPED)
    assert free and not left, f"left behind: {[p.pid for p in left]}"
    notebook = json.loads((results / ".lab" / "digits-lab.ipynb").read_text())
    assert f"open_lab({str(results.resolve())!r}, None, learner=" in notebook["cells"][1]["source"]


def test_a_folder_without_a_store_gets_one_as_run_makes_it(tmp_path, results):
    out = tmp_path / "fresh"
    process, _ = start_lab(out, _free_port(), isolated_jupyter(tmp_path / "jupyter"))
    try:
        status, err, _ = ctrl_c(process)
    finally:
        end(process)
    assert status == 0 and err.endswith(STOPPED) and "Traceback" not in err
    assert err.startswith("reading the data\nwriting 1,797 images and the Kosh store to")
    import kosh
    made, ran = (kosh.connect(str(folder / "store.sql"), read_only=True) for folder in (out, results))
    try:  # the same digits in the same splits as `digits-tutorial run` stores them, and no run yet
        for split in ("train", "validation", "test"):
            assert sorted(d.index for d in made.find(kind="digit", split=split)) == sorted(
                d.index for d in ran.find(kind="digit", split=split))
        assert not list(made.find(kind="run", ids_only=True))
    finally:
        made.close(); ran.close()
    assert len(list((out / "images").glob("*.png"))) == 1797


def test_a_port_in_use_is_one_line_and_nothing_is_written(tmp_path, cli):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("lab", "--out", tmp_path / "nothing", "--no-browser", "--port", port)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"digits-tutorial: error: port {port} on 127.0.0.1 is in use: choose another with --port\n"
    assert not (tmp_path / "nothing").exists()


def test_a_port_out_of_range_is_one_line(tmp_path, cli):
    done = cli("lab", "--out", tmp_path / "nothing", "--no-browser", "--port", "70000")
    assert (done.returncode, done.stderr) == (1, "digits-tutorial: error: port 70000: expected a number from 1 to 65535\n")
    assert not (tmp_path / "nothing").exists()


def test_a_moved_folder_opens_on_the_files_beside_its_store(results, tmp_path):
    "A results folder moved elsewhere: the lab re-points its store (as `runs` does) and shows its runs and digits."
    from digits_tutorial.widgets import open_lab
    before, after = tmp_path / "before", tmp_path / "elsewhere" / "after"
    shutil.copytree(results, before)
    shutil.move(before, after)  # the files the store was made with are gone from where it recorded them
    lab = open_lab(after)
    assert lab.state.result is not None and lab.runs.value == lab.state.result.id
    cm = lab.state.result.matrices["validation"]
    lab.cells[3][3].click()
    assert lab.provenance.value.count("class='digit-row'") == cm[3, 3] and bytes(lab.gallery.value)[:4] == b"\x89PNG"
    import kosh
    store = kosh.connect(str(after / "store.sql"), read_only=True)
    try:
        [ds] = list(store.find(label=3, split="test"))[:1]
        assert all(uri.startswith(str(after.resolve())) for uri in ds.get_record()["files"])
    finally:
        store.close()


def test_a_file_as_the_folder_is_one_line(tmp_path, cli):
    given = tmp_path / "notes.txt"
    given.write_text("not a folder")
    done = cli("lab", "--out", given, "--no-browser", "--port", _free_port())
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and done.stderr.startswith(f"digits-tutorial: error: {given}: a file")


def test_the_command_re_points_a_moved_folder_before_it_serves(results, tmp_path):
    "`digits-tutorial lab` on a moved folder: the store points at the files beside it before any page is asked for."
    moved = tmp_path / "moved"
    shutil.copytree(results, tmp_path / "before")
    shutil.move(tmp_path / "before", moved)
    process, _ = start_lab(moved, _free_port(), isolated_jupyter(tmp_path / "jupyter"))
    try:
        import sqlite3
        with sqlite3.connect(f"file:{moved / 'store.sql'}?mode=ro", uri=True) as db:
            raw = db.execute("SELECT raw FROM Record WHERE raw LIKE '%\"label\"%' LIMIT 1").fetchone()[0]
        status, err, _ = ctrl_c(process)
    finally:
        end(process)
    files = json.loads(raw)["files"]
    assert files and all(uri.startswith(str(moved.resolve())) for uri in files), list(files)[:2]
    assert (status, err) == (0, STOPPED)


def test_without_voila_the_command_says_how_to_get_it(tmp_path):
    "An install without the lessons extra has no Voila: one line that says which extra brings it, and nothing written."
    code = ("import sys; sys.modules['voila'] = None  # as if Voila were not installed\n"
            "from digits_tutorial.cli import main; sys.exit(main(sys.argv[1:]))")
    process = subprocess.Popen([sys.executable, "-c", code, "lab", "--out", str(tmp_path / "nothing"), "--no-browser",
                                "--port", str(_free_port())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        end(process)
        pytest.fail("digits-tutorial lab without Voila went on (it served?) instead of saying what is missing")
    assert (process.returncode, out) == (1, "")
    assert err == ("digits-tutorial: error: the lab app needs Voila, which the lessons extra installs: "
                           'pip install -e ".[lessons]" in the project\'s folder\n')
    assert not (tmp_path / "nothing").exists()


def test_a_kill_stops_it_as_ctrl_c_does(results, tmp_path):
    "SIGTERM (a `kill`, or a session that ends) stops the server and its kernels too, with the same one line."
    port = _free_port()
    process, url = start_lab(results, port, isolated_jupyter(tmp_path))
    processes = family(process)
    try:
        process.terminate()
        _, err = process.communicate(timeout=STOP_TIMEOUT)
        left = [p for p in processes if p.is_running() and p.status() != "zombie"]
    finally:
        end(process)
        kill_family(processes[1:])  # Voila and its kernels, if the command left them behind
    assert (process.returncode, err) == (0, STOPPED) and port_is_free(port)
    assert not left, f"left behind: {[p.pid for p in left]}"
