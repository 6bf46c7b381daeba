"""The README's way in, as a new user takes it: its first command in a fresh copy of the project, then every lesson, once.

The test copies the project (the files git knows, as a clone has them, with any uncommitted change) to a temporary
folder and runs there, exactly as the README writes it:

1. the first command: a new virtual environment, the package with its `lessons` extra, and the main job
   (`digits-tutorial run --out results`); then `pip check`, and no pytest and no Playwright in that environment (the
   lessons must not need the test tools), and the `python3` kernel that `jupyter` starts there is that environment's;
2. every lesson of `nbs/`, top to bottom, in a fresh kernel of that environment, as `.venv/bin/jupyter execute` (the
   README's command for one lesson) runs it: `tools/run_lessons.py` run with that environment's Python, two lessons at a
   time. This is the one execution of the lessons in a CI run: it writes `_executed/` in the project tested (the executed
   lessons for the documentation site, and `lessons.json`, which `test_lessons.py` and `test_exercises.py` read);
3. the lab app of that environment (`digits-tutorial lab`), asked for its page, then stopped with Ctrl-C;
4. the README's command for the documentation site (the `docs` extra, then `tools/build_docs.py`) in that environment,
   from the lessons executed in step 2 (copied into it: they are not executed again). The site it builds is CI's: it is
   put in `_docs/` of the project tested, where `test_site.py` finds it current and checks it in Chromium.

It takes minutes (an install, from pip's cache when it is warm, and every lesson). CI (`.ci/run`) starts it first, beside
the rest of the suite; the tests that read what it makes wait for it (`conftest.wait_for_install`). Leave it out with
`-m "not install"`. Each step's time is printed (in CI, among its phases). Timeouts scale with `DIGITS_TUTORIAL_TIMEOUT_SCALE`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import EXECUTED, INSTALL_PENDING, INSTALL_REPORT, lessons_lock, run_lessons_tool
from test_browser import TIMEOUT_SCALE, _free_port
from test_lab_app import PAGE_TIMEOUT, STOPPED, ctrl_c, end, isolated_jupyter, start_lab

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 1800 * TIMEOUT_SCALE   # seconds for the README's first command (an install, then the main job)
LESSONS_TIMEOUT = 1800 * TIMEOUT_SCALE   # seconds for every lesson
DOCS_TIMEOUT = 1200 * TIMEOUT_SCALE      # seconds for the docs extra's install and the site
EXAMPLE = "nbs/01_data.ipynb"            # the lesson the README's command names


def code_blocks(text: str) -> list[list[str]]:
    "The lines of each ```bash block of a markdown text."
    return [block.strip("\n").splitlines() for block in re.findall(r"^```bash\n(.*?)^```$", text, re.M | re.S)]


def readme_commands() -> dict:
    "The commands the README gives a new user: the first command, the tests', the lessons' two, and the documentation's."
    blocks = code_blocks((ROOT / "README.md").read_text())
    (first, ci), (open_lessons, run_lesson) = blocks[0], blocks[1]
    [docs] = [block[0] for block in blocks if "tools/build_docs.py" in block[0]]
    return {"first": first, "ci": ci, "open": open_lessons, "lesson": run_lesson, "docs": docs}


def test_the_readme_names_its_commands():
    "What the install test below runs: the README's commands, in the form it expects (it fails here if they change)."
    commands = readme_commands()
    assert commands["first"] == ('python3 -m venv .venv && .venv/bin/pip install -e ".[lessons]" && '
                                 '.venv/bin/digits-tutorial run --out results')
    assert commands["ci"] == "bash .ci/run"
    assert commands["open"] == ".venv/bin/jupyter lab nbs/"
    assert commands["lesson"] == f".venv/bin/jupyter execute {EXAMPLE}"
    assert commands["docs"] == '.venv/bin/pip install -e ".[docs]" && .venv/bin/python tools/build_docs.py'


def copy_of_the_project(target: Path) -> Path:
    "The files git knows (tracked, or new and not ignored), as they are in the working tree, copied to `target`."
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file(): continue  # deleted in the working tree
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


def shell(command: str, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    "Run `command` as a user's shell would, in `cwd`."
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def user_environment() -> dict:
    "This process's environment without what points at the test suite's own Python (its venv on PATH, PYTHONPATH)."
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH")}
    ours = {str(Path(sys.prefix) / "bin"), os.environ.get("VIRTUAL_ENV", "") + "/bin"} if sys.prefix != sys.base_prefix else set()
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p.rstrip("/") not in ours)
    return env


@pytest.mark.install
def test_the_readme_first_command_gives_every_lesson(tmp_path):
    pending = os.environ.get(INSTALL_PENDING)  # CI: the tests that read the lessons and the site wait on this file
    try:
        _first_command_lessons_and_site(tmp_path)
    except BaseException:
        if pending: Path(pending).write_text("failed\n")  # they fail at once, rather than wait or run the lessons again
        raise
    if pending: Path(pending).unlink(missing_ok=True)


def _first_command_lessons_and_site(tmp_path):
    commands = readme_commands()
    project = copy_of_the_project(tmp_path / "digits-tutorial")
    env = user_environment()
    times = {}

    start = time.monotonic()
    done = shell(commands["first"], project, env, INSTALL_TIMEOUT)
    times["the README's first command (install and run)"] = time.monotonic() - start
    assert done.returncode == 0, f"{commands['first']}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert (project / "results" / "metrics.json").is_file() and (project / "results" / "store.sql").is_file()
    python = project / ".venv" / "bin" / "python"

    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = ("import importlib.util as u, json; "
             "print(json.dumps({m: u.find_spec(m) is not None for m in ('pytest', 'playwright', 'nbdev', 'voila', 'jupyterlab')}))")
    found = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, check=True).stdout)
    assert found == {"pytest": False, "playwright": False, "nbdev": True, "voila": True, "jupyterlab": True}, found
    # the kernel `jupyter execute` starts for a lesson ("python3") is this environment's Python
    specs = json.loads(subprocess.run([str(project / ".venv" / "bin" / "jupyter"), "kernelspec", "list", "--json"],
                                      capture_output=True, text=True, env=env, check=True).stdout)["kernelspecs"]
    argv0 = specs["python3"]["spec"]["argv"][0]
    assert argv0 in ("python", "python3", str(python)) or Path(argv0).resolve() == python.resolve(), specs["python3"]
    assert Path(specs["python3"]["resource_dir"]).is_relative_to(project / ".venv"), specs["python3"]["resource_dir"]

    # every lesson, once, in a fresh kernel of that environment ("python3", checked above), as `jupyter execute` runs one
    start = time.monotonic()
    with lessons_lock():  # no other test process writes _executed/ meanwhile
        ran = subprocess.run([str(python), str(project / "tools" / "run_lessons.py"), str(EXECUTED)], cwd=project,
                             env=env, capture_output=True, text=True, timeout=LESSONS_TIMEOUT)
    times["every lesson, two at a time (tools/run_lessons.py)"] = time.monotonic() - start
    print(ran.stdout, flush=True)
    tool = run_lessons_tool()
    done = tool.results(EXECUTED)
    assert done and done["complete"] and Path(done["python"]) == python, (ran.stdout[-2000:], ran.stderr[-3000:])
    assert done["fingerprint"] == tool.sources_fingerprint(), "the copy's lessons are not the project's"
    assert sorted(done["lessons"]) == sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb"))
    failed = {name: lesson["error"] for name, lesson in done["lessons"].items() if lesson["error"]}
    assert not failed and ran.returncode == 0, "\n".join(f"{name}: {error}" for name, error in failed.items()) or ran.stderr[-3000:]

    start = time.monotonic()
    process, url = start_lab(project / "results", _free_port(), {**isolated_jupyter(tmp_path / "jupyter"),
                                                                  "PATH": env["PATH"]},
                             script=project / ".venv" / "bin" / "digits-tutorial")
    try:
        with urllib.request.urlopen(url, timeout=PAGE_TIMEOUT) as response:
            assert "application/vnd.jupyter.widget-view+json" in response.read().decode()
        status, err, _ = ctrl_c(process)
    finally:
        end(process)
    assert (status, err) == (0, STOPPED)
    times["digits-tutorial lab: page served, then Ctrl-C"] = time.monotonic() - start

    start = time.monotonic()
    shutil.copytree(EXECUTED, project / "_executed")  # the lessons executed above, for the site: not executed again
    docs = shell(commands["docs"], project, env, DOCS_TIMEOUT)
    times["the documentation site (the README's command)"] = time.monotonic() - start
    assert docs.returncode == 0, docs.stdout[-3000:] + docs.stderr[-3000:]
    assert "running them" not in docs.stdout, docs.stdout[-2000:]  # built from the executed copies, not run again
    site = project / "_docs"
    assert (site / "index.html").is_file() and (site / "data.html").is_file()
    ours = ROOT / "_docs"  # the same build for test_site.py, unless _docs/ holds something else than a build
    if not ours.exists() or (ours / ".digits-tutorial-site.json").is_file():
        shutil.rmtree(ours, ignore_errors=True)
        shutil.copytree(site, ours)

    report = "".join(f"[install] {seconds:7.1f} s  {step}\n" for step, seconds in times.items())
    print(report, end="")
    if os.environ.get("DIGITS_TUTORIAL_CI_PHASES"):  # CI: printed among its phases (conftest), each lesson's time too
        (Path(os.environ["DIGITS_TUTORIAL_CI_PHASES"]).parent / INSTALL_REPORT).write_text(ran.stdout + report)
    shutil.rmtree(project, ignore_errors=True)  # a virtual environment is large: keep it only when the test fails
