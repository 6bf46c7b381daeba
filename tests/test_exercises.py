"""Every lesson's exercises: each check accepts the lesson's own solution and rejects a typical wrong answer with its hint.

Each lesson runs once per CI run (`tools/run_lessons.py`), and after its last cell, in its own kernel, every exercise's
check is asked about the placeholder `...`, the solution (the code in the lesson's `<details>` block) and the typical
mistake that `digits_tutorial.exercises.MISTAKES` names for the check; this file reads what the checks said
(`_executed/lessons.json`; alone, it runs the lessons first). The checks' other cases are tested below, directly.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from digits_tutorial.exercises import MISTAKES

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


@pytest.mark.parametrize("notebook", NUMBERED)
def test_checks_accept_the_solution_and_reject_a_typical_mistake(notebook, executed_lessons):
    lesson = executed_lessons["lessons"][notebook]
    assert lesson["error"] is None, f"{notebook} failed, so its exercises were not asked: {lesson['error']}"
    probed = lesson["exercises"]
    assert [(e["check"], e["call"], e["solution_code"]) for e in probed] == exercises(notebook)
    for e in probed:
        name = e["check"]
        assert e["error"] is None, f"{name}: asking the check failed: {e['error']}"
        assert e["mistake_code"] == MISTAKES[name][0]
        for case in ("placeholder", "solution", "mistake"):
            assert e[case][0] == "Feedback", f"{name} answered the {case} with a {e[case][0]}, not a Feedback"
        assert not e["placeholder"][1], f"{name} accepts the placeholder"
        assert e["solution"][1], f"{name} rejects the lesson's own solution: {e['solution'][2]}"
        assert not e["mistake"][1], f"{name} accepts the typical mistake {e['mistake_code']!r}"
        hint = MISTAKES[name][1]
        assert hint in e["mistake"][2], f"{name}: the hint {hint!r} is not in {e['mistake'][2]!r}"


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


@pytest.mark.parametrize("out", ["elsewhere/cli/exercise", "lesson-output/exercise", "exercise", "/tmp/lesson-output/cli/exercise"])
def test_a_knn_command_into_another_folder_is_refused(out):
    "Another folder that ends in the same name is another folder."
    from digits_tutorial.exercises import check_knn_command
    feedback = check_knn_command(RIGHT_COMMAND.replace("lesson-output/cli/exercise", out))
    assert not feedback.ok and "write to `--out lesson-output/cli/exercise`" in feedback.message, feedback


def test_blocks_too_big_get_their_own_hint():
    from digits_tutorial.data import block_counts
    from digits_tutorial.exercises import check_block_counts
    bitmap = (np.random.default_rng(0).random((32, 32)) < 0.4).astype(np.uint8)
    too_big = bitmap.reshape(4, 8, 4, 8).sum(axis=(1, 3))
    assert "Your blocks are too big" in check_block_counts(too_big, bitmap).message
    assert "Expected 64 counts" in check_block_counts(np.zeros(10), bitmap).message
    assert check_block_counts(block_counts(bitmap[None])[0], bitmap).ok
