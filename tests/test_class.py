"""A class in one store: many learners' runs in one Kosh store on a real MariaDB server, which these tests start themselves
(a temporary data folder, a free port of 127.0.0.1) and stop afterwards; real `digits-tutorial` processes, started at once.

Without MariaDB's server on the machine these tests fail, they do not skip: `bash .ci/run` installs Debian's mariadb-server.
"""
import getpass
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import local_mariadb
from digits_tutorial.classroom import MARIADB_VARIABLE, STORE_VARIABLE, masked_url, write_class_digits
from digits_tutorial.data import load_digits
from digits_tutorial.images import image_name
from digits_tutorial.plumbing import digit_records, insert_server_records, store_user_id
from digits_tutorial.runs import load_run, run_rows, run_tutorial
from digits_tutorial.split import split_digits
from digits_tutorial.store import connect_store, digit_metadata, store_digits

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("digits-tutorial")
RUN_FILES = {"metrics.json", "split.csv", "model.skops", "Train_Data_confusion_matrix.png",
             "Validation_Data_confusion_matrix.png", "Test_Data_confusion_matrix.png"}


@pytest.fixture(scope="module")
def server():
    "A real MariaDB server of the tests' own, as root or not: a temporary data folder, a free port; stopped afterwards."
    with local_mariadb("tests") as started:  # not the README's digits_class, which a test makes as the README says
        yield started
    assert not started.running


def cli(*args, url=None, cwd=None, timeout=900):
    "Run `digits-tutorial` as a learner does, the class store's address (if any) in the environment."
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop(STORE_VARIABLE, None)
    if url: env[STORE_VARIABLE] = url
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def every_row(server, database) -> list[str]:
    "Every row of every table of `database`, as text: what the store holds, whatever Sina and Kosh put where."
    import pymysql
    db = pymysql.connect(host="127.0.0.1", port=server.port, user=server.user, password=server.password, database=database)
    try:
        with db.cursor() as c:
            c.execute("SHOW TABLES")
            tables = [t for (t,) in c.fetchall()]
            rows = []
            for table in tables:
                c.execute(f"SELECT * FROM `{table}`")
                rows += [f"{table}: {row}" for row in c.fetchall()]
        return rows
    finally:
        db.close()


def records(server, database, kind) -> list[dict]:
    import pymysql
    db = pymysql.connect(host="127.0.0.1", port=server.port, user=server.user, password=server.password, database=database)
    try:
        with db.cursor() as c:
            c.execute("SELECT raw FROM Record WHERE type = %s", (kind,))
            return [json.loads(raw) for (raw,) in c.fetchall()]
    finally:
        db.close()


def test_four_learners_at_once(server, tmp_path):
    """Four `digits-tutorial run` processes of four learners, started at once against one class store: the digits once,
    four runs each with its learner and complete files, a board of four; a connection opened before them sees them all,
    without reconnecting; and the password is in no output, file or record. (Four make the race that eight do: every
    process but one waits for the first one's digits; on two cores, eight only wait longer.)"""
    url = server.new_database("four")
    watcher = connect_store(url)  # opened before the runs, on an empty database
    assert run_rows(watcher) == []  # its transaction has begun: does it see what commits from now on?
    learners = [f"learner-{i}" for i in range(4)]
    env = dict(os.environ, MPLBACKEND="Agg", **{STORE_VARIABLE: url})
    started = time.perf_counter()
    procs = [subprocess.Popen([str(SCRIPT), "run", "--out", str(tmp_path / who), "--learner", who, "--quiet"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in learners]
    said = [p.communicate(timeout=900) for p in procs]
    print(f"four runs at once: {time.perf_counter() - started:.1f} s wall time")
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in said]
    assert all(out.count("\n") == 1 and err == "" for out, err in said), said

    # the digits once: written by whoever came first, into that learner's folder
    teacher = connect_store(url, folder=tmp_path / "teacher")
    digits = records(server, "four", "dataset")
    digits = [r for r in digits if r["data"].get("kind", {}).get("value") == "digit"]
    assert len(digits) == 1797 and len({(r["data"]["source"]["value"], r["data"]["line"]["value"]) for r in digits}) == 1797
    assert len(list(teacher.find(kind="digit", ids_only=True))) == 1797
    assert sum((tmp_path / who / "images").is_dir() for who in learners) == 1

    # four runs, each with its learner and complete files; the watcher sees them without reconnecting
    rows = run_rows(watcher)
    assert sorted(r["learner"] for r in rows) == learners
    for row in rows:
        folder = Path(row["folder"])
        assert folder.parent.parent == tmp_path / row["learner"] and {p.name for p in folder.iterdir()} == RUN_FILES
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["run"]["id"] == row["id"] and metrics["run"]["learner"] == row["learner"]
        run = load_run(teacher, row["id"], with_model=True)
        assert run.learner == row["learner"] and run.estimator is not None and len(run.ids) == 1797

    # the board, as a program reads it
    board = cli("runs", "--board", "--json", url=url, cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    listed = json.loads(board.stdout)
    assert sorted(b["learner"] for b in listed) == learners and [b["rank"] for b in listed] == list(range(1, 5))
    assert all(b["scored_by"] == "validation" and b["runs"] == 1 for b in listed)

    # the password: in no output, no file of any learner, no row of any table
    everything = [out + err for out, err in said] + [board.stdout + board.stderr]
    assert not any(server.password in text for text in everything)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 1797 and not any(server.password.encode() in p.read_bytes() for p in files)
    rows_of_tables = every_row(server, "four")
    assert len(rows_of_tables) > 1797 * 2 and not any(server.password in text for text in rows_of_tables)
    assert not any(quote(server.password) in text for text in everything + rows_of_tables)


def test_the_lab_lists_a_class_and_fits_from_a_widget_thread(server, tmp_path):
    "The lab on a class store: its runs with their learners, and a fit from JupyterLab's callback thread recorded in the learner's folder."
    from digits_tutorial.classroom import open_store
    from digits_tutorial.widgets import LabState
    url = server.new_database("lab")
    for who in ("ada", "grace"):
        run_tutorial(tmp_path / who, store=url, learner=who, quiet=True)
    state = LabState(open_store(tmp_path / "ada", url))
    labels = [label for label, _ in state.runs()]
    assert len(labels) == 2 and " ada · " in labels[0] and " grace · " in labels[1]
    fitted = []
    worker = threading.Thread(target=lambda: fitted.append(state.fit()))
    worker.start(); worker.join()
    assert fitted == [True], state.error
    assert state.wait_recorded(timeout=300) and state.not_recorded == {}  # recorded after the fit, by the lab's recorder
    assert state.result.folder.parent.parent == tmp_path / "ada" and state.result.learner == getpass.getuser()
    assert len(state.runs()) == 3


def test_a_wrong_password_an_unreachable_server_and_bad_input_are_one_line(server, tmp_path):
    "Each is one line on standard error, naming the host and port where a server is concerned, never the password; nothing written."
    url = server.new_database("errors")
    wrong = url.replace(server.password, "Wrong-Secret-42")
    assert wrong != url
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); free = s.getsockname()[1]
    nobody = f"mysql+pymysql://teacher:Wrong-Secret-42@127.0.0.1:{free}/errors"
    cases = [
        (["run", "--out", tmp_path / "a", "--quiet"], wrong, f"127.0.0.1:{server.port}: the MariaDB server refused user 'teacher'"),
        (["runs", "--board"], wrong, f"127.0.0.1:{server.port}: the MariaDB server refused user 'teacher'"),
        (["run", "--out", tmp_path / "b", "--quiet"], nobody, f"127.0.0.1:{free}: no MariaDB server answers there"),
        (["runs"], nobody, f"127.0.0.1:{free}: no MariaDB server answers there"),
        (["run", "--out", tmp_path / "c", "--quiet", "--store", "sqlite:///Wrong-Secret-42.sql"], None, "sqlite:///Wrong-Secret-42.sql: a class store is a MariaDB"),
        (["run", "--out", tmp_path / "d", "--quiet"], "Wrong-Secret-42 is no address", "is not a database address"),
        (["run", "--out", tmp_path / "e", "--quiet", "--replace"], url, "--replace (replace=True) does not apply to a class store"),
        (["run", "--out", tmp_path / "f", "--quiet", "--learner", "Ada Lovelace"], url, "learner 'Ada Lovelace': a learner's name is"),
        (["runs"], url, "no class store here yet"),
    ]
    for args, store, expected in cases:
        done = cli(*args, url=store, cwd=tmp_path)
        assert done.returncode == 1 and done.stdout == "", (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and expected in done.stderr, (args, done.stderr)
        leaked = server.password in done.stderr or ("Wrong-Secret-42" in done.stderr and "sqlite" not in expected)
        assert not leaked, f"{args}: a password in the message"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # a refused run writes nothing


def test_the_bulk_path_writes_what_sina_and_kosh_write(server, tmp_path):
    """The digits written into a server store by the bulk path (`insert_server_records`, behind the version check) are the
    records and rows that Sina's public `records.insert` makes of the same records, and those of Kosh's create/associate."""
    digits = load_digits("bundled")[:24]
    digits.split = split_digits(digits.y, (0.5, 0.25, 0.25), seed=0, stratify=False)
    bulk = connect_store(server.new_database("bulk"), folder=tmp_path / "bulk")
    write_class_digits(bulk, digits, tmp_path / "bulk")
    uris = [str(tmp_path / "bulk" / "images" / image_name(s, l, y)) for s, l, y in zip(digits.source, digits.line, digits.y)]
    sina = connect_store(server.new_database("sina"), folder=tmp_path / "bulk")
    same = digit_records([digit_metadata(digits, i) for i in range(len(digits))], uris, store_user_id(sina))
    sina.get_sina_store().records.insert(same)  # Sina's public bulk insert
    kosh_way = connect_store(server.new_database("kosh"), folder=tmp_path / "bulk")
    store_digits(kosh_way, digits, uris)  # Kosh's own create and associate, a dataset at a time

    volatile = {"creation_date", "last_modified_date", "creator"}
    def described(database):
        "Datasets by name: their metadata, and the metadata of their file (volatile values and ids left out)."
        files = {r["id"]: r for r in records(server, database, "file")}
        out = {}
        for r in records(server, database, "dataset"):
            if r["data"].get("kind", {}).get("value") != "digit": continue
            [(uri, entry)] = r["files"].items()
            file = files[entry["kosh_id"]]
            out[r["data"]["name"]["value"]] = (
                {k: v for k, v in r["data"].items() if k not in volatile}, uri, entry["mimetype"],
                {k: v for k, v in file["data"].items() if k not in volatile | {"associated"}}, file["data"]["associated"]["value"] == [r["id"]],
                sorted(k.replace(uri, "<uri>") for k in r["user_defined"]["kosh_information"]))
        return out
    assert len(described("bulk")) == 24
    assert described("bulk") == described("sina") == {k: v for k, v in described("kosh").items()}

    def table_shape(database):
        "How many rows of each table hold each name for the datasets and files: what Sina's queries see."
        import pymysql
        db = pymysql.connect(host="127.0.0.1", port=server.port, user=server.user, password=server.password, database=database)
        try:
            with db.cursor() as c:
                shape = {}
                for table, column in (("ScalarData", "name"), ("StringData", "name"), ("Document", "mimetype")):
                    c.execute(f"SELECT r.type, t.{column}, COUNT(*) FROM {table} t JOIN Record r ON r.id = t.id "
                              f"WHERE r.type IN ('dataset', 'file') GROUP BY r.type, t.{column}")
                    shape[table] = sorted(c.fetchall())
                return shape
        finally:
            db.close()
    assert table_shape("bulk") == table_shape("sina") == table_shape("kosh") and table_shape("bulk")["Document"]
    for query in ({"label": 3}, {"split": "test"}, {"kind": "digit", "split": "train"}):
        names = lambda store: sorted(ds.name for ds in store.find(**query))
        assert names(bulk) == names(sina) == names(kosh_way) and names(bulk)


def test_a_first_write_cut_short_is_written_again(server, tmp_path):
    "Digits in the store, but not yet what the store holds (a first run stopped between the two): the next run writes them anew, once."
    url = server.new_database("cut_short")
    digits = load_digits("bundled")
    digits.split = split_digits(digits.y, seed=0)
    store = connect_store(url, folder=tmp_path / "first")
    insert_server_records(url, digit_records([digit_metadata(digits, i) for i in range(100)],
                                             [str(tmp_path / "first" / f"{i}.png") for i in range(100)], store_user_id(store)))
    assert len(list(store.find(kind="digit", ids_only=True))) == 100
    run_tutorial(tmp_path / "second", store=url, learner="second", quiet=True)
    assert len(list(store.find(kind="digit", ids_only=True))) == 1797


def test_each_learner_sweeps_on_their_own(server, tmp_path):
    "Two learners sweep the same grid on one class store: each sweep is the learner's own, each candidate a run of theirs."
    from digits_tutorial.select import sweep_tutorial
    url = server.new_database("sweeps")
    tables = {who: sweep_tutorial(tmp_path / who, model="knn", grid={"k": [1, 3]}, cv=3, quiet=True, store=url, learner=who)
              for who in ("ada", "grace")}
    rows = run_rows(connect_store(url))
    assert sorted((r["learner"], r["params"]["k"]) for r in rows) == [("ada", 1), ("ada", 3), ("grace", 1), ("grace", 3)]
    assert tables["ada"].attrs["sweep"] != tables["grace"].attrs["sweep"]
    assert {r["sweep"] for r in rows if r["learner"] == "grace"} == {tables["grace"].attrs["sweep"]}


def test_a_run_records_its_learner_by_default_the_login_name(tmp_path):
    "In a store of one's own as well: the learner is the login name unless named."
    metrics = run_tutorial(tmp_path, quiet=True)
    assert metrics["run"]["learner"] == getpass.getuser()
    assert [r["learner"] for r in run_rows(tmp_path / "store.sql")] == [getpass.getuser()]


def readme_class_section() -> tuple[str, str]:
    "The teacher's SQL and the learners' commands, as the README shows them."
    text = (ROOT / "README.md").read_text()
    section = text.split("## A class in one store", 1)[1].split("\n## ", 1)[0]
    sql = re.search(r"```sql\n(.*?)```", section, re.S)[1]
    shell = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    return sql, shell


def test_the_readme_class_commands_work_as_shown(server, tmp_path):
    "The teacher's SQL, run on the server as its root; then the learners' commands, in a shell, with the README's address filled in."
    import pymysql
    sql, shell = readme_class_section()
    password = "Class-Pw-" + server.password[:8]
    root = pymysql.connect(unix_socket=str(server.folder / "mariadb.sock"), user="root")
    try:
        with root.cursor() as c:
            for statement in filter(str.strip, sql.replace("the class password", password).split(";")): c.execute(statement)
    finally:
        root.close()
    assert "mysql+pymysql://class:PASSWORD@HOST:3306/digits_class" in shell
    script = shell.replace("PASSWORD@HOST:3306", f"{password}@127.0.0.1:{server.port}")
    env = dict(os.environ, MPLBACKEND="Agg", PATH=f"{SCRIPT.parent}{os.pathsep}{os.environ['PATH']}")
    env.pop(STORE_VARIABLE, None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(l.startswith("logistic on 1,797 digits") for l in lines) and any(l.startswith("knn on 1,797 digits") for l in lines)
    assert any(re.match(r"\s+1\s+ada\s+\d+\.\d+%\s+validation", l) for l in lines), done.stdout
    assert "4 runs in mysql+pymysql://class:***@127.0.0.1" in done.stdout  # two runs and two candidates, all ada's
    leaked = password in done.stdout + done.stderr
    assert not leaked, "the password is in what the commands printed"
    assert (tmp_path / "results" / "images").is_dir() and (tmp_path / "results" / "metrics.json").is_file()


def test_without_mariadb_the_lesson_says_it_falls_back_to_sqlite(tmp_path, monkeypatch):
    """The class lesson, top to bottom, on a machine without MariaDB: on a SQLite file, saying so in its output. (The one
    lesson run a second time in CI: in another configuration than its run with the others, which has a server.)"""
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    monkeypatch.setenv(MARIADB_VARIABLE, str(tmp_path / "no-mariadb-here"))  # as on a machine without MariaDB
    lessons = tmp_path / "nbs"
    shutil.copytree(ROOT / "nbs", lessons, ignore=shutil.ignore_patterns("lesson-output", ".ipynb_checkpoints"))
    monkeypatch.chdir(lessons)
    monkeypatch.delenv(STORE_VARIABLE, raising=False)
    nb = read_nb(lessons / "14_class.ipynb")
    shell = CaptureShell()
    shell.run_all(nb, exc_stop=True)
    assert shell.exc is None
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert shell.user_ns["server"] is None and "NO MARIADB SERVER on this machine" in outputs and "falls back to a SQLite file" in outputs
    assert (lessons / "lesson-output" / "class" / "store.sql").is_file()


def test_the_board_ranks_by_validation_never_by_test():
    "Each learner's best run by validation accuracy (by cross-validation for a run without a validation split); test never decides."
    from digits_tutorial.classroom import class_board
    nan = float("nan")
    def row(learner, when, validation, test, cv=nan):
        return {"id": f"{learner}-{when}", "when": f"2026-01-01T10:00:0{when}", "learner": learner, "model": "knn",
                "params": {"k": 1}, "setting": "k=1", "seed": 0, "fractions": "0.6/0.2/0.2", "accuracy_train": 1.0,
                "accuracy_validation": validation, "accuracy_test": test, "augment": "none", "refit": False,
                "cv_mean": cv, "cv_std": nan, "cv_folds": nan}
    rows = [row("ada", 1, 0.90, 0.99), row("ada", 2, 0.95, 0.80), row("bo", 3, 0.93, 0.97),
            row("cy", 4, nan, 0.99, cv=0.97), row("di", 5, nan, 0.99), row("ed", 6, 0.93, 0.90)]
    board = class_board(rows)
    assert [(b["rank"], b["learner"], b["score"], b["scored_by"]) for b in board] == [
        (1, "cy", 0.97, "cross-validation"), (2, "ada", 0.95, "validation"), (3, "bo", 0.93, "validation"),
        (4, "ed", 0.93, "validation"), (None, "di", None, None)]
    assert board[1]["id"] == "ada-2" and board[1]["runs"] == 2 and "accuracy_test" not in board[1]


def test_of_two_runs_with_the_same_score_the_board_keeps_the_earlier():
    "A learner who fits again and scores the same has not done better: the board keeps the run that got there first."
    from digits_tutorial.classroom import class_board
    nan = float("nan")
    def row(when, validation):
        return {"id": f"ada-{when}", "when": f"2026-01-01T10:00:0{when}", "learner": "ada", "model": "knn", "params": {"k": 1},
                "setting": "k=1", "seed": 0, "fractions": "0.6/0.2/0.2", "accuracy_train": 1.0, "accuracy_validation": validation,
                "accuracy_test": 0.9, "augment": "none", "refit": False, "cv_mean": nan, "cv_std": nan, "cv_folds": nan}
    [best] = class_board([row(1, 0.95), row(2, 0.95), row(3, 0.94)])
    assert (best["id"], best["when"], best["runs"]) == ("ada-1", "2026-01-01T10:00:01", 3)


def test_a_learners_name_has_at_most_64_characters():
    "The bound of a learner's name, on both sides of it, as `check_learner` and the command line see it."
    from digits_tutorial.runs import check_learner
    assert check_learner("a" * 64) == "a" * 64 and check_learner("a") == "a"
    for name in ("a" * 65, "", "-ada", "Ada Lovelace"):
        with pytest.raises(ValueError, match="a learner's name is 1 to 64"):
            check_learner(name)


@pytest.mark.parametrize("address, shown", [
    ("postgresql://u:Wrong-Secret-42@db.example.org/digits_class", "postgresql://u:***@db.example.org/digits_class"),
    ("mysql+pymysql://u:Wrong-Secret-42@/digits_class", "mysql+pymysql://u:***@/digits_class"),
])
def test_an_address_that_is_no_class_store_is_refused_with_its_password_masked(tmp_path, address, shown):
    "Another database's driver, or no host: refused before any work, in one line that shows the address without its password."
    done = cli("run", "--out", tmp_path / "out", "--quiet", "--store", address, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"digits-tutorial: error: {shown}: ")
    leaked = "Wrong-Secret-42" in done.stderr
    assert not leaked, "the password is in the message"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_class_store_of_other_digits_is_refused_without_its_password(server, tmp_path):
    "A run on other digits than the class's: refused, naming the store by its masked address, the store left as it was."
    from digits_tutorial.classroom import class_store
    from digits_tutorial.store import StoreMismatch, store_info
    url = server.new_database("other_digits")
    first, other = load_digits("bundled")[:30], load_digits("bundled")[30:50]
    for digits in (first, other): digits.split = split_digits(digits.y, (0.5, 0.25, 0.25), seed=0, stratify=False)
    store = class_store(url, first, tmp_path / "ada", quiet=True)
    with pytest.raises(StoreMismatch) as refused:
        class_store(url, other, tmp_path / "grace", quiet=True)
    said = str(refused.value)
    leaked = server.password in said
    assert not leaked, "the password is in the message"
    assert said.startswith(f"{masked_url(url)}: the class store holds 30 digits") and "not the 20 digits" in said
    assert store_info(store)["n_digits"] == 30 and not (tmp_path / "grace" / "images").exists()


def test_two_threads_of_one_process_take_turns_on_the_server_lock(server):
    """JupyterLab runs widget callbacks in threads of their own: a thread that asks for the class store's lock while
    another thread of the same process holds it waits for it (here it gives up after its timeout), as another process would."""
    from digits_tutorial import classroom
    url = server.new_database("thread_lock")
    held, release, said = threading.Event(), threading.Event(), []

    def holder():
        with classroom.server_lock(url):
            held.set()
            release.wait(60)

    def asker():
        try:
            with classroom.server_lock(url, timeout=1):
                said.append("got the lock while another thread held it")
        except TimeoutError as err:
            said.append(str(err))

    first = threading.Thread(target=holder)
    first.start()
    try:
        assert held.wait(60)
        second = threading.Thread(target=asker)
        second.start(); second.join(60)
    finally:
        release.set(); first.join(60)
    assert len(said) == 1 and "waited 1 s for the class store's lock" in said[0], said
    with classroom.server_lock(url, timeout=1):  # and once it is released, the next one gets it
        pass


@pytest.fixture(scope="module")
def class_of_ada(server, tmp_path_factory) -> str:
    "A class store that holds one run, ada's: the address."
    url = server.new_database("lab_app")
    run_tutorial(tmp_path_factory.mktemp("class") / "ada", store=url, learner="ada", quiet=True)
    return url


@pytest.mark.parametrize("given", ["environment", "--store"])
def test_the_lab_app_opens_a_class_store_and_keeps_its_password_to_itself(server, class_of_ada, tmp_path, given):
    "`digits-tutorial lab` on a class store, its address in DIGITS_TUTORIAL_STORE or --store: served by Voila, the address masked."
    import select
    import urllib.request
    from test_browser import _free_port
    from test_lab_app import PAGE_TIMEOUT, START_TIMEOUT, STOPPED, ctrl_c, end, isolated_jupyter
    url = class_of_ada
    port, out = _free_port(), tmp_path / "grace"
    env = isolated_jupyter(tmp_path / "jupyter")
    env.pop(STORE_VARIABLE, None)
    command = [str(SCRIPT), "lab", "--out", str(out), "--no-browser", "--port", str(port)]
    if given == "--store": command += ["--store", url]
    else: env[STORE_VARIABLE] = url
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=PAGE_TIMEOUT) as response:
            page = response.read().decode()
        status, err, _ = ctrl_c(process)
    finally:
        end(process)
    assert line == f"the lab on {masked_url(url)}: http://127.0.0.1:{port}/ (Ctrl-C stops it)\n"
    assert "application/vnd.jupyter.widget-view+json" in page and "Traceback" not in page  # the lab, opened in the kernel
    assert f"On the class store <code>{masked_url(url)}</code>" in page
    assert (status, err) == (0, STOPPED)
    assert not (out / "store.sql").exists()  # the class store, not a folder's own
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and not any(server.password.encode() in p.read_bytes() for p in written)  # the app's notebook, Voila's log
    assert server.password not in page
