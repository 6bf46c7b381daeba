"""Every lesson runs top to bottom, offline, in a fresh kernel, and its own asserts hold.

The lessons are executed once per CI run, by `tools/run_lessons.py`, in the environment the README's first command makes
(`tests/test_readme_install.py`, which CI starts first, and this file waits for); this file reads what that run wrote
(`_executed/lessons.json`), and what two lessons showed (the class lesson's addresses, the speed lesson's benchmark).
Alone, or after a change of a lesson or of the library, it runs every lesson itself first (`conftest.lessons_results`).
"""
import json
import re
from pathlib import Path

import pytest

from digits_tutorial.bench import TARGETS

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb"))


def test_every_lesson_was_run(executed_lessons):
    assert sorted(executed_lessons["lessons"]) == LESSONS


@pytest.mark.parametrize("notebook", LESSONS)
def test_the_lesson_runs_top_to_bottom(executed_lessons, notebook):
    lesson = executed_lessons["lessons"][notebook]
    assert lesson["error"] is None, f"{notebook} failed after {lesson['seconds']} s: {lesson['error']}"


UNMASKED = re.compile(r"://\w+:(?!\*\*\*@)[^@\s\"']+@127\.0\.0\.1")  # the lesson's server, its password not `***`


def test_the_lesson_ran_on_its_own_server_and_shows_no_password(executed_lessons):
    """The class lesson, as CI runs it once (`test_readme_install.py`, `test_lessons.py`): on a MariaDB server of its own,
    every address it shows masked, none of its outputs or files with a password in it (the lesson itself checks the store's
    records and its files for the server's password, which only its kernel knew)."""
    from conftest import EXECUTED
    lesson = executed_lessons["lessons"]["14_class.ipynb"]
    assert lesson["error"] is None, lesson["error"]
    outputs = json.dumps([c.get("outputs", []) for c in json.loads((EXECUTED / "nbs" / "14_class.ipynb").read_text())["cells"]])
    assert "a MariaDB server of our own at 127.0.0.1" in outputs and "teacher:***@127.0.0.1" in outputs
    assert not UNMASKED.search(outputs), "an address with its password is in the lesson's outputs"
    files = [p for p in (EXECUTED / "nbs" / "lesson-output" / "class").rglob("*") if p.is_file()]
    assert files and not [p for p in files if UNMASKED.search(p.read_bytes().decode("latin-1"))]


def test_the_speed_lessons_bench_reported_every_figure_and_its_verdicts(executed_lessons):
    """CI's run of the benchmark: the speed lesson's, small (one round, 2,000 digits), once per CI run with every lesson. The
    lesson checks that its JSON line is what it returns, that each verdict follows from the figures and is printed once, and
    that every figure and phase is measured; here, that it ran and what it showed a reader."""
    from conftest import EXECUTED
    lesson = executed_lessons["lessons"]["13_speed.ipynb"]
    assert lesson["error"] is None, lesson["error"]
    cells = json.loads((EXECUTED / "nbs" / "13_speed.ipynb").read_text())["cells"]
    shown = "".join("".join(o["text"]) for c in cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "digits-tutorial bench: the main job (median of 1 rounds, whole processes) and 2,000 digits" in shown
    for name, (_, _, _, words) in TARGETS.items():
        assert f"(target {words})" in shown, name
