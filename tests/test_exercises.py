"""Every lesson's exercises: each check accepts the lesson's own solution and rejects a typical wrong answer with its hint.

Each lesson runs once, top to bottom, in a shell of its own (as `nbdev_test` runs it), in a copy of the lessons; then,
in that shell, for every exercise: the placeholder `...` is rejected, the solution (the code in the lesson's
`<details>` block) is accepted, and the typical mistake that `digits_tutorial.exercises.MISTAKES` names for the
check is rejected with a message holding its hint.
"""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from digits_tutorial.exercises import MISTAKES, Feedback

ROOT = Path(__file__).resolve().parents[1]
NUMBERED = sorted(p.name for p in (ROOT / "nbs").glob("[0-9][0-9]_*.ipynb"))
CHECK = re.compile(r"^(check_\w+)\((.*)\)\s*$", re.M)
SOLUTION = re.compile(r"<details>\s*<summary>Solution</summary>\s*```python\n(.*?)```\s*</details>", re.S)


def exercises(notebook):
    "(check name, the call of the exercise cell, the solution's code) for each exercise of a lesson."
    cells = json.loads((ROOT / "nbs" / notebook).read_text())["cells"]
    found = []
    for k, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not source.startswith("answer = ..."): continue
        call = CHECK.search(source)
        solution = SOLUTION.search("".join(cells[k + 1]["source"])) if k + 1 < len(cells) else None
        assert call and solution, f"{notebook}, cell {k}: an exercise needs a check call and, next, a <details> solution"
        found.append((call[1], call[0], solution[1]))
    return found


@pytest.mark.parametrize("notebook", NUMBERED)
def test_every_numbered_lesson_has_an_exercise(notebook):
    assert exercises(notebook), f"{notebook} has no exercise"
    for name, _, _ in exercises(notebook):
        assert name in MISTAKES, f"{name} has no typical mistake in MISTAKES"


@pytest.fixture(scope="module")
def lessons(tmp_path_factory):
    "A copy of the lessons to run in, so that the lessons' own output folders are left alone."
    folder = tmp_path_factory.mktemp("lessons") / "nbs"
    shutil.copytree(ROOT / "nbs", folder, ignore=shutil.ignore_patterns("lesson-output", ".ipynb_checkpoints"))
    return folder


def feedback(shell, call) -> Feedback:
    shell.run(f"_feedback = {call}")
    assert shell.exc is None, f"{call} raised {shell.exc!r}"
    result = shell.user_ns["_feedback"]
    assert isinstance(result, Feedback)
    return result


@pytest.mark.parametrize("notebook", NUMBERED)
def test_checks_accept_the_solution_and_reject_a_typical_mistake(notebook, lessons):
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    import digits_tutorial.store as store_module
    here, loaders = os.getcwd(), list(store_module.LOADERS)
    os.chdir(lessons)
    try:
        shell = CaptureShell()
        shell.run_all(read_nb(lessons / notebook), exc_stop=True)
        for name, call, solution in exercises(notebook):
            unanswered = call.replace("answer", "...", 1)
            assert not feedback(shell, unanswered), f"{name} accepts the placeholder"
            shell.run(solution)
            assert shell.exc is None, f"the solution of {name} raised {shell.exc!r}"
            right = feedback(shell, call)
            assert right.ok, f"{name} rejects the lesson's own solution: {right.message}"
            mistake, hint = MISTAKES[name]
            shell.run(mistake)
            assert shell.exc is None, f"the typical mistake of {name} raised {shell.exc!r}"
            wrong = feedback(shell, call)
            assert not wrong.ok, f"{name} accepts the typical mistake {mistake!r}"
            assert hint in wrong.message, f"{name}: the hint {hint!r} is not in {wrong.message!r}"
    finally:
        os.chdir(here)
        store_module.LOADERS[:] = loaders  # the lesson's own loader classes (lesson 7 registers them) stay in the lesson
