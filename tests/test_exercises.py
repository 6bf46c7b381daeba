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

import numpy as np
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


# --- checks that must accept every right answer and refuse every wrong one ---------------------------------------

@pytest.fixture(scope="module")
def lab_state(tmp_path_factory):
    "The lab's state on a small store: what `check_fractions_after_move` gets in the lab lesson."
    from digits_tutorial.data import load_digits
    from digits_tutorial.split import split_digits
    from digits_tutorial.store import build_store, connect_store
    from digits_tutorial.widgets import LabState
    digits = load_digits("bundled")[:200]
    digits.split = split_digits(digits.y, seed=0)
    return LabState(connect_store(build_store(digits, tmp_path_factory.mktemp("lab-state"))))


@pytest.mark.parametrize("answer", [(0.7 * 70 / 85, 0.7 * 15 / 85), (0.5765, 0.1235), (0.576, 0.124), (0.58, 0.12)])
def test_fractions_worked_out_by_hand_are_right_exact_or_rounded(lab_state, answer):
    from digits_tutorial.exercises import check_fractions_after_move
    before = lab_state.fractions
    assert check_fractions_after_move(answer, lab_state).ok, answer
    assert lab_state.fractions == before  # the learner's lab is left as it is


@pytest.mark.parametrize("answer, hint", [((0.35, 0.35), "keep their proportion"), ((0.57, 0.13), "Try it"),
                                          ((0.6, 0.1), "Try it"), ((57.6, 12.4), "percentages"), ((0.58,), "Try it"),
                                          (0.58, "Expected two fractions")])
def test_wrong_fractions_are_refused_with_a_hint(lab_state, answer, hint):
    from digits_tutorial.exercises import check_fractions_after_move
    feedback = check_fractions_after_move(answer, lab_state)
    assert not feedback.ok and hint in feedback.message, feedback


RIGHT_COMMAND = "run --out lesson-output/cli/exercise --model knn --param k=7 --quiet"


@pytest.mark.parametrize("answer", [RIGHT_COMMAND, RIGHT_COMMAND.split(), f"digits-tutorial {RIGHT_COMMAND}",
                                    "run --quiet --param k=7 --model knn --out ./lesson-output/cli/exercise/"])
def test_the_knn_command_in_any_order_is_right(answer):
    from digits_tutorial.exercises import check_knn_command
    assert check_knn_command(answer).ok, answer


@pytest.mark.parametrize("extra, named", [
    ("--augment shifts --refit --seed 5", ["`--augment shifts` (another fit)", "`--refit`", "`--seed 5`"]),
    ("--data uci:optdigits.tra --replace", ["`--data uci:optdigits.tra` (other digits)", "`--replace` (it would replace"]),
    ("--train 0.5 --validation 0.3", ["`--train 0.5` (another split)", "`--validation 0.3`"]),
    ("--no-stratify", ["`--no-stratify`"]), ("--test-data other.tes", ["`--test-data other.tes`"]),
])
def test_a_knn_command_that_fits_otherwise_or_replaces_data_is_refused(extra, named):
    "The question asks for knn with k=7 and nothing else: another fit, other digits or a replaced store is not that."
    from digits_tutorial.exercises import check_knn_command
    feedback = check_knn_command(f"{RIGHT_COMMAND} {extra}")
    assert not feedback.ok and all(n in feedback.message for n in named), feedback


def test_blocks_too_big_get_their_own_hint():
    from digits_tutorial.data import block_counts
    from digits_tutorial.exercises import check_block_counts
    bitmap = (np.random.default_rng(0).random((32, 32)) < 0.4).astype(np.uint8)
    too_big = bitmap.reshape(4, 8, 4, 8).sum(axis=(1, 3))
    assert "Your blocks are too big" in check_block_counts(too_big, bitmap).message
    assert "Expected 64 counts" in check_block_counts(np.zeros(10), bitmap).message
    assert check_block_counts(block_counts(bitmap[None])[0], bitmap).ok
