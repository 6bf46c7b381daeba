"""A class's progress on a real MariaDB server, which this module starts (a temporary data folder, a free port of 127.0.0.1)
and stops: eight learners' processes answering the checks at the same moment, every verdict kept and read back by
`digits-tutorial progress --json`, the teacher's board reading only what is new, and the password nowhere.

Without MariaDB's server on the machine these tests fail, they do not skip: `bash .ci/run` installs Debian's mariadb-server.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import local_mariadb
from digits_tutorial.classroom import STORE_VARIABLE, ClassProgress
from digits_tutorial.exercises import EXERCISES, check_load_ratio, keep_progress, read_verdicts, wait_for_progress
from digits_tutorial.store import connect_store

from test_class import every_row
from test_progress import LEARNER, LESSON_OF, RIGHT_ANSWERS, WRONG_ANSWERS

SCRIPT = Path(sys.executable).with_name("digits-tutorial")


@pytest.fixture(scope="module")
def server():
    "A real MariaDB server of this module's own; stopped afterwards."
    with local_mariadb("progress") as started:
        yield started
    assert not started.running


def answers_of(i) -> list[list[str]]:
    """What learner i answers, in order: a mix of wrong answers, right ones, answers after a right one, placeholders, and
    exercises left alone, different from one learner to the next."""
    answers = [["check_learner_runs", "placeholder"]]
    answers += [["check_recall_of_eights", "wrong"]] * (i % 3) + [["check_recall_of_eights", "right"]]
    answers += [["check_precision_of_eights", "right"]] if i % 2 == 0 else [["check_precision_of_eights", "wrong"]] * 2
    if i < 4: answers += [["check_load_ratio", "wrong"], ["check_load_ratio", "right"], ["check_load_ratio", "wrong"]]
    return answers


def expected(answers) -> dict:
    "Exercise: (solved, attempts) for a learner's answers, as `digits-tutorial progress` must count them."
    out = {name: (False, 0) for name in EXERCISES}
    for name, how in answers:
        if how == "placeholder" or out[name][0]: continue  # no answer; or the exercise was solved already
        out[name] = (how == "right", out[name][1] + 1)
    return out


def test_eight_learners_answer_at_once(server, tmp_path):
    """Eight processes, each a learner, answer checks right and wrong at the same moment into one class store: nothing is
    lost, `digits-tutorial progress --json` counts each learner's attempts and first right answer, the teacher's board reads
    the same and then only what is new; no password in any output, file or row, and no answer in any row."""
    url = server.new_database("eight")
    env = {k: v for k, v in os.environ.items() if k != STORE_VARIABLE}
    empty = subprocess.run([str(SCRIPT), "progress", "--store", url], capture_output=True, text=True, env=env, timeout=300)
    assert (empty.returncode, empty.stderr) == (0, "") and empty.stdout.startswith("no answers kept in mysql+pymysql://teacher:***@")
    learners = [f"learner-{i}" for i in range(8)]
    go = tmp_path / "go"
    procs = []
    for i, who in enumerate(learners):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_TUTORIAL_")}  # progress on, as for a learner
        env.update({STORE_VARIABLE: url, "DIGITS_TUTORIAL_LEARNER": who, "HOME": str(tmp_path / who),
                    "XDG_DATA_HOME": str(tmp_path / who / "data")})
        procs.append(subprocess.Popen([sys.executable, "-c", LEARNER, json.dumps(answers_of(i)), str(go)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("go.ready-*"))) < 8:  # every learner ready: they answer together
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    started = time.perf_counter()
    go.touch()
    said = [p.communicate(timeout=300) for p in procs]
    print(f"eight learners answered and their verdicts were kept in {time.perf_counter() - started:.1f} s")
    assert [p.returncode for p in procs] == [0] * 8 and all(err == "" for _, err in said), said
    assert [out.count("Feedback") for out, _ in said] == [len(answers_of(i)) for i in range(8)]

    # nothing lost: every answer but the placeholders is a verdict, in the order the learner gave them
    verdicts = read_verdicts(connect_store(url))
    for i, who in enumerate(learners):
        given = [(name, how == "right") for name, how in answers_of(i) if how != "placeholder"]
        assert [(v["exercise"], v["right"]) for v in verdicts if v["learner"] == who] == given, who
    assert {v["lesson"] for v in verdicts} == {LESSON_OF[v["exercise"]] for v in verdicts}

    listed = subprocess.run([str(SCRIPT), "progress", "--json", "--store", url], capture_output=True, text=True, env=env,
                            timeout=300)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["learner"] for r in rows] == [who for who in learners for _ in EXERCISES]
    assert [r["lesson"] for r in rows[:len(EXERCISES)]] == sorted(EXERCISES.values())
    for i, who in enumerate(learners):
        mine = {r["exercise"]: r for r in rows if r["learner"] == who}
        assert {name: (r["solved"], r["attempts"]) for name, r in mine.items()} == expected(answers_of(i)), who
        for name, r in mine.items():
            rights = [v["when"] for v in verdicts if v["learner"] == who and v["exercise"] == name and v["right"]]
            assert r["first_right"] == (rights[0] if rights else None)
    grid = subprocess.run([str(SCRIPT), "progress", "--store", url], capture_output=True, text=True, env=env, timeout=300)
    assert grid.returncode == 0 and grid.stdout.startswith("8 learners and 15 exercises in mysql+pymysql://teacher:***@127.0.0.1:")

    # the teacher's board: the same progress; then one more verdict, and only that one is read
    teacher = connect_store(url)
    state = ClassProgress(teacher, teacher)
    assert state.refresh() and state.problem is None and state.progress == rows and state.board == []
    seen = {v["id"]: dict(v, learner="read before") for v in verdicts}  # what a reader read before is not read again
    with keep_progress(url, learner="learner-7"):
        assert check_load_ratio(2.0, {"kosh_load_seconds": 1.0, "pillow_load_seconds": 0.5})
    assert wait_for_progress(120) == 0
    again = read_verdicts(teacher, seen)
    assert [v["learner"] for v in again].count("read before") == len(verdicts) and again[-1]["learner"] == "learner-7"
    assert state.refresh() and not state.refresh()
    assert next(r for r in state.progress if (r["learner"], r["exercise"]) == ("learner-7", "check_load_ratio"))["solved"]

    # the password: in no output, no file, no row of any table; and no answer in any row
    everything = [out + err for out, err in said] + [listed.stdout, listed.stderr, grid.stdout, grid.stderr]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    rows_of_tables = every_row(server, "eight")
    assert len(rows_of_tables) > 8 * 5 and any("check_precision_of_eights" in text for text in rows_of_tables)
    for secret in (server.password, quote(server.password)):
        assert not any(secret in text for text in everything + rows_of_tables)
        assert not any(secret.encode() in p.read_bytes() for p in files)
    assert not any(given in text for text in rows_of_tables for given in WRONG_ANSWERS + RIGHT_ANSWERS)
    assert not any((tmp_path / who / "data").exists() for who in learners)  # in a class, nothing kept on the learner's machine
