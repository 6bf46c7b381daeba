"""What the exercises' checks keep: each answer's verdict, in the learner's own progress store, read back by
`digits-tutorial progress`; nothing with `DIGITS_TUTORIAL_PROGRESS=off` or for the placeholder; a failure is one line and
the check answers anyway. Learners are real Python processes calling the checks as a lesson's cells do; their login name
(`LOGNAME`, which `getpass` reads first) and data folder (`XDG_DATA_HOME`) are the test's own. The class store's side, on
a real MariaDB server, is `test_progress_class.py`.
"""
import inspect
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from digits_tutorial.exercises import (EXERCISES, MISTAKES, Feedback, check_recall_of_eights, keep_progress, progress_rows,
                                       progress_text, wait_for_progress)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("digits-tutorial")

# A learner's process: the checks of four lessons, each given its right answer, a wrong one or the placeholder, as
# `[[check, "right" | "wrong" | "placeholder"], ...]` in argv[1]. With a path in argv[2], it says it is ready
# (argv[2].ready-PID) and waits for that path to exist before answering: learners that answer at the same moment.
LEARNER = r'''
import json, os, sys, time
from pathlib import Path
import numpy as np
from digits_tutorial import exercises
cm = np.eye(10, dtype=int) * 5
cm[8, 3], cm[2, 8] = 8, 6  # recall of 8: 5/13; precision of 8: 5/11
given = {"check_recall_of_eights": (cm, 5 / 13, 0.123456789), "check_precision_of_eights": (cm, 5 / 11, 0.87654321),
         "check_load_ratio": ({"kosh_load_seconds": 1.234567, "pillow_load_seconds": 1.0}, 1.234567, 7.654321),
         "check_learner_runs": ([{"learner": "ada"}, {"learner": "ada"}, {"learner": "bob"}], 2, 987654)}
if len(sys.argv) > 2:
    Path(f"{sys.argv[2]}.ready-{os.getpid()}").touch()
    while not Path(sys.argv[2]).exists(): time.sleep(0.01)
for name, how in json.loads(sys.argv[1]):
    data, right, wrong = given[name]
    said = getattr(exercises, name)({"right": right, "wrong": wrong, "placeholder": ...}[how], data)
    print(type(said).__name__, said.ok, flush=True)
'''
WRONG_ANSWERS = ("0.123456789", "0.87654321", "7.654321", "987654")  # what no store may hold
RIGHT_ANSWERS = (repr(5 / 13), repr(5 / 11), "1.234567")  # nor these (check_learner_runs' 2 is too short to look for)
LESSON_OF = {"check_recall_of_eights": "06_evaluate", "check_precision_of_eights": "09_improve",
             "check_load_ratio": "13_speed", "check_learner_runs": "14_class"}


def learner_env(base: Path, **extra) -> dict:
    "The environment of a learner alone: a home, a data folder and a login name of the test's own; progress kept (not off)."
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_TUTORIAL_")}
    env.update(HOME=str(base / "home"), XDG_DATA_HOME=str(base / "data"), LOGNAME="ada", USER="ada", MPLBACKEND="Agg")
    env.update(extra)
    return env


def answer(answers, env, go=None, timeout=300):
    "Run a learner's process giving `answers`, in a folder of its own beside its home (`cwd`); the completed process."
    args = [sys.executable, "-c", LEARNER, json.dumps(answers)] + ([str(go)] if go else [])
    cwd = Path(env["HOME"]).with_name("cwd")
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


def progress(*args, env):
    return subprocess.run([str(SCRIPT), "progress", *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def sqlite_rows(path) -> list[str]:
    "Every row of every table of the SQLite file at `path`, as text."
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [f"{t}: {row}" for t in tables for row in db.execute(f"SELECT * FROM `{t}`")]


def test_a_learner_alone_sees_both_lessons_in_progress(tmp_path):
    """Checks in two lessons (two processes, as two kernels), then `digits-tutorial progress` shows both: the right answer
    of lesson 6 at its second try (the placeholder before it is no answer), two wrong ones in lesson 13; in the progress
    store the README names, holding no answer."""
    env = learner_env(tmp_path)
    for answers, said in (([["check_recall_of_eights", "placeholder"], ["check_recall_of_eights", "wrong"],
                            ["check_recall_of_eights", "right"]], "Feedback False\nFeedback False\nFeedback True\n"),
                          ([["check_load_ratio", "wrong"], ["check_load_ratio", "wrong"]], "Feedback False\nFeedback False\n")):
        done = answer(answers, env)
        assert (done.returncode, done.stdout, done.stderr) == (0, said, "")
    store = tmp_path / "data" / "digits-tutorial" / "progress.sql"  # ~/.local/share/digits-tutorial/ without XDG_DATA_HOME
    assert [p.name for p in store.parent.iterdir()] == ["progress.sql"]  # nothing half-made left beside it

    shown = progress(env=env)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    header, columns, row = shown.stdout.splitlines()
    assert str(store) in header and header.startswith("1 learner and 15 exercises in ")
    marks = dict(zip(columns.split()[1:-1], row.split()[1:-1]))
    assert row.split()[0] == "ada" and row.split()[-1] == "1/15"
    assert (marks["06"], marks["13"]) == ("✓2", "✗2") and {v for k, v in marks.items() if k not in ("06", "13")} == {"·"}

    listed = progress("--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["exercise"]: r for r in json.loads(listed.stdout)}
    assert len(rows) == 15 and {r["learner"] for r in rows.values()} == {"ada"}
    recall, ratio = rows["check_recall_of_eights"], rows["check_load_ratio"]
    assert (recall["lesson"], recall["status"], recall["solved"], recall["attempts"]) == ("06_evaluate", "solved", True, 2)
    assert recall["first_right"] == recall["last_answer"] and recall["first_right"].endswith("+00:00")
    assert (ratio["lesson"], ratio["status"], ratio["solved"], ratio["attempts"], ratio["first_right"]) == \
        ("13_speed", "tried", False, 2, None)
    assert all((r["status"], r["attempts"], r["first_right"]) == ("not yet", 0, None)
               for name, r in rows.items() if name not in ("check_recall_of_eights", "check_load_ratio"))
    everything = sqlite_rows(store)
    assert any("check_load_ratio" in row for row in everything)
    assert not any(given in row for row in everything for given in WRONG_ANSWERS + RIGHT_ANSWERS)  # no answer, right or wrong


def test_progress_off_and_the_placeholder_keep_nothing(tmp_path):
    "With DIGITS_TUTORIAL_PROGRESS=off a right answer keeps nothing; with progress on, the placeholder alone keeps nothing."
    off = answer([["check_recall_of_eights", "right"]], learner_env(tmp_path / "off", DIGITS_TUTORIAL_PROGRESS="off"))
    placeholder = answer([["check_recall_of_eights", "placeholder"]] * 2, learner_env(tmp_path / "on"))
    assert (off.returncode, off.stdout, off.stderr) == (0, "Feedback True\n", "")
    assert (placeholder.returncode, placeholder.stdout, placeholder.stderr) == (0, "Feedback False\n" * 2, "")
    for learner in ("off", "on"):  # nothing written anywhere: its home, its data folder, the folder it ran in
        assert sorted(p.relative_to(tmp_path / learner).as_posix() for p in (tmp_path / learner).rglob("*")) == ["cwd"]


def test_progress_moves_with_its_variable_and_says_when_there_is_none(tmp_path):
    "DIGITS_TUTORIAL_PROGRESS=PATH keeps it in PATH; `progress` reading a place with nothing yet shows the learner's row, all not yet."
    moved = tmp_path / "elsewhere" / "mine.sql"
    env = learner_env(tmp_path, DIGITS_TUTORIAL_PROGRESS=str(moved))
    empty = progress("--json", env=env)
    assert empty.returncode == 0 and not moved.exists()  # reading makes nothing
    assert [(r["learner"], r["status"]) for r in json.loads(empty.stdout)] == [("ada", "not yet")] * len(EXERCISES)
    done = answer([["check_learner_runs", "right"]], env)
    assert done.returncode == 0 and done.stderr == "" and moved.is_file() and not (tmp_path / "data").exists()
    rows = json.loads(progress("--json", "--learner", "ada", env=env).stdout)
    assert [(r["exercise"], r["attempts"]) for r in rows if r["solved"]] == [("check_learner_runs", 1)]


def test_a_progress_not_kept_is_one_line_and_the_check_answers(tmp_path):
    """A store that cannot be made, a learner's name that cannot be kept, a class server that does not answer: each time the
    check answers, and one line on standard error says the progress was not kept and why, no traceback, no password."""
    (tmp_path / "a-file").write_text("not a folder")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    cases = [({"DIGITS_TUTORIAL_PROGRESS": str(tmp_path / "a-file" / "progress.sql")}, "a-file"),
             ({"DIGITS_TUTORIAL_LEARNER": "Ada Lovelace"}, "learner 'Ada Lovelace': a learner's name is"),
             ({"DIGITS_TUTORIAL_STORE": f"mysql+pymysql://class:Secret-Word-42@127.0.0.1:{free}/digits_class"},
              f"127.0.0.1:{free}: no MariaDB server answers there")]
    for extra, why in cases:
        done = answer([["check_recall_of_eights", "right"]], learner_env(tmp_path / "learner", **extra))
        assert done.returncode == 0 and done.stdout == "Feedback True\n", (extra, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, (extra, done.stderr)
        assert done.stderr.startswith("digits-tutorial: check_recall_of_eights: your answer was checked, but your progress "
                                      "was not kept: ") and why in done.stderr, (extra, done.stderr)
        assert "Secret-Word-42" not in done.stderr
    assert not (tmp_path / "learner" / "data").exists()


def test_a_check_answers_before_a_slow_store_has_its_verdict(tmp_path, capsys):
    """A class server that takes the connection and never answers: the check returns its feedback while its verdict is still
    being written; the writer then gives up (the address's connect_timeout) and says so in one line."""
    with socket.socket() as silent:  # listens, never accepts: a connection is made, no server ever greets it
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"mysql+pymysql://class:Secret-Word-42@127.0.0.1:{port}/digits_class?connect_timeout=3&read_timeout=3"
        with keep_progress(url, learner="ada"):
            said = check_recall_of_eights(1.0, [[5 if i == j else 0 for j in range(10)] for i in range(10)])
        being_written = wait_for_progress(0)
        assert isinstance(said, Feedback) and said.ok
        assert being_written == 1  # the check did not wait for it
        assert wait_for_progress(120) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}: " in err and "progress was not kept" in err, err
    assert "Secret-Word-42" not in err


def verdict(learner, exercise, right, when, id, lesson=None):
    return {"id": id, "learner": learner, "exercise": exercise, "lesson": lesson or EXERCISES.get(exercise), "right": right,
            "when": f"2026-03-01T10:{when}+00:00"}


def test_progress_rows_order_ties_and_attempts():
    """Learners alphabetically (case aside), exercises in lesson order (one unknown to this version after its lesson's);
    answers in the order given, equal times by id; attempts up to the first right answer, not after."""
    verdicts = [verdict("bob", "check_load_ratio", False, "00:01", "v1"),
                verdict("Ada", "check_recall_of_eights", True, "00:05", "b2"),   # the same time as the next, a later id
                verdict("Ada", "check_recall_of_eights", False, "00:05", "a1"),
                verdict("Ada", "check_load_ratio", True, "00:02", "v2"), verdict("Ada", "check_load_ratio", False, "00:09", "v3"),
                verdict("carl", "check_from_a_later_version", True, "00:03", "v4", lesson="06_evaluate")]
    rows = progress_rows(verdicts, learners=["dora"])
    assert list(dict.fromkeys(r["learner"] for r in rows)) == ["Ada", "bob", "carl", "dora"]
    names = [r["exercise"] for r in rows if r["learner"] == "Ada"]
    assert names[names.index("check_recall_of_eights") + 1] == "check_from_a_later_version"
    assert [r["lesson"] for r in rows if r["learner"] == "dora"] == sorted(r["lesson"] for r in rows if r["learner"] == "dora")
    by = {(r["learner"], r["exercise"]): r for r in rows}
    assert (by["Ada", "check_recall_of_eights"]["attempts"], by["Ada", "check_recall_of_eights"]["first_right"]) == \
        (2, "2026-03-01T10:00:05+00:00")
    ratio = by["Ada", "check_load_ratio"]
    assert (ratio["attempts"], ratio["first_right"], ratio["last_answer"]) == (1, "2026-03-01T10:00:02+00:00",
                                                                                "2026-03-01T10:00:09+00:00")
    assert (by["bob", "check_load_ratio"]["status"], by["bob", "check_load_ratio"]["attempts"]) == ("tried", 1)
    assert {r["status"] for r in rows if r["learner"] == "dora"} == {"not yet"} and len(rows) == 4 * (len(EXERCISES) + 1)
    grid = progress_text(rows, "here").splitlines()
    assert grid[1].split()[1:4] == ["01", "02", "03"] and "06a" in grid[1] and "06b" in grid[1]
    assert grid[2].split()[0] == "Ada" and "✓2" in grid[2] and "✓1" in grid[2] and "✗1" in grid[3]


def test_every_check_is_the_exercise_of_its_lesson_and_still_answers_with_feedback():
    "Each check is listed with the lesson whose exercise calls it, takes the answer first, and keeps its own docstring."
    found = {}
    for notebook in sorted((ROOT / "nbs").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and source.startswith("answer = ..."):
                found[re.search(r"^(check_\w+)\(", source, re.M)[1]] = notebook.stem
    assert found == EXERCISES and set(EXERCISES) == set(MISTAKES)
    import digits_tutorial.exercises as exercises
    for name in EXERCISES:
        check = getattr(exercises, name)
        assert list(inspect.signature(check).parameters)[0] == "answer" and check.__doc__ == check.__wrapped__.__doc__
        assert inspect.signature(check).return_annotation in (Feedback, "Feedback")
