"""Every failure one line, nothing written by a command that fails or only reads, tables that line up (issue 26).

The commands are called in this process through `main`, as the installed command calls it: the parser's refusals, the
messages of a missing archive and of a folder given as data, the store file of a folder before and after commands that
only read or that fail, the runs table with ids of every length, a sweep's tie rule and a resumed sweep's counts.
Ctrl-C sent to real processes is in `test_interrupts.py`; a class store's server killed mid-sweep in
`test_class_failures.py`.
"""
import contextlib
import hashlib
import io
import json

import pytest

from digits_tutorial.cli import main



def call(*args) -> tuple[int, str, str]:
    "`digits-tutorial ARGS` in this process: (status, standard output, standard error)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


def one_line(err) -> bool:
    return err.count("\n") == 1 and err.startswith("digits-tutorial: error: ") and "Traceback" not in err


@pytest.fixture(scope="module")
def results(tmp_path_factory, small):
    "A results folder with two runs whose ids differ in length: logistic regression (31 characters), a random forest (36)."
    out = tmp_path_factory.mktemp("results") / "results"
    for model in ("logistic", "random_forest"):
        small_forest = ["--param", "n_trees=10"] if model == "random_forest" else []  # a quick forest
        status, _, err = call("run", "--out", out, "--data", small, "--model", model, *small_forest, "--quiet")
        assert status == 0, err
    return out


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_of(results, tmp_path):
    "A copy of the results folder for a test that adds runs, opened once (which points its store at the copy's files)."
    import shutil
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    assert call("runs", "--out", copy)[0] == 0
    return copy


@pytest.mark.parametrize("args, said", [
    (["run", "--model", "xgboost"], "argument --model: invalid choice: 'xgboost'"),
    (["run", "--param", "C=abc"], "argument --param: C: expected a number, got 'abc'"),
    (["sweep", "--model", "knn"], "the following arguments are required: --grid"),
    (["runs", "--board", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "the following arguments are required: COMMAND"),
], ids=["a model", "a setting", "no grid", "an unknown option", "no command"])
def test_what_the_parser_refuses_is_one_line_and_status_1(args, said, tmp_path):
    "Lesson 10: bad input ends with status 1 and one line, argparse's refusals too (not its usage block and status 2)."
    status, out, err = call(*args, "--out", tmp_path / "out") if args else call()
    assert status == 1 and out == "" and one_line(err) and said in err, (status, err)
    assert "--help` lists what it takes" in err and "usage:" not in err
    assert not (tmp_path / "out").exists()


def test_help_is_still_help():
    with contextlib.redirect_stdout(io.StringIO()) as shown, pytest.raises(SystemExit) as ended:
        main(["run", "--help"])
    assert ended.value.code == 0 and "--learner NAME" in shown.getvalue()


def test_a_missing_archive_and_a_folder_given_as_a_file_are_named_for_what_they_are(results, tmp_path):
    missing, folder = tmp_path / "nosuch.zip", tmp_path / "a-folder"
    folder.mkdir()
    for args, said in [(["import", missing], f"{missing}: no such file; give the zip file that `export` wrote"),
                       (["import", folder], f"{folder}: a folder, not an archive"),
                       (["run", "--data", folder, "--quiet"], f"{folder}: a folder, not a file; give the path of a UCI file")]:
        out = results if args[0] == "import" else tmp_path / "new"
        status, _, err = call(*args, "--out", out)
        assert status == 1 and one_line(err) and said in err, err
        assert "Errno" not in err and "damaged" not in err and "no such file" not in err.replace(f"{missing}: no such file", "")


def test_commands_that_only_read_or_that_fail_write_nothing(results, small, tmp_path):
    "runs, rerun, export, and a rerun or an import that fails: `store.sql` byte for byte as before, the folder as it was."
    results = copy_of(results, tmp_path)
    store = results / "store.sql"
    listed = json.loads(call("runs", "--out", results, "--json")[1])
    run_id = listed[0]["id"]
    other = tmp_path / "other"  # a store of other digits, and a run of it to send
    assert call("run", "--out", other, "--data", small, "--train", "0.5", "--validation", "0.25", "--test", "0.25",
                "--seed", "3", "--quiet")[0] == 0
    other_run = json.loads(call("runs", "--out", other, "--json")[1])[0]["id"]
    assert call("export", other_run, "--out", other, "--to", tmp_path / "other.zip")[0] == 0  # same digits, another split:
    (tmp_path / "not-a-zip.zip").write_text("hello\n")                                           # imported below
    before, files_before = sha(store), sorted(p.relative_to(results) for p in results.rglob("*"))
    for args, status_expected in [(["runs"], 0), (["runs", "--json"], 0), (["rerun", run_id], 0), (["rerun", "nosuch"], 1),
                                  (["export", run_id, "--to", tmp_path / "sent.zip"], 0),
                                  (["import", tmp_path / "nosuch.zip"], 1), (["import", tmp_path / "not-a-zip.zip"], 1)]:
        status, _, err = call(*args, "--out", results)
        assert status == status_expected, (args, err)
        assert sha(store) == before, f"{args}: store.sql was written"
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == files_before
    assert (tmp_path / "sent.zip").is_file()
    status, out, err = call("import", tmp_path / "other.zip", "--out", results)  # a command that writes, writes
    assert status == 0 and "imported" in out and sha(store) != before, err


def test_the_runs_table_lines_up_whatever_the_ids(results):
    status, out, _ = call("runs", "--out", results)
    header, *rows = out.splitlines()[1:]
    listed = json.loads(call("runs", "--out", results, "--json")[1])
    assert status == 0 and len(rows) == len(listed) == 2 and {len(r["id"]) for r in listed} == {31, 36}
    start = header.index("model")
    assert [row[start:].split()[0] for row in rows] == [r["model"] for r in listed]  # every model in the model column
    end = header.index("test") + len("test")  # right-aligned: every test accuracy ends where its header ends
    assert [row[:end].split()[-1] for row in rows] == [f"{r['accuracy']['test']:.1%}" for r in listed]


def test_a_sweep_says_how_it_orders_ties_and_orders_them_so(results, small, tmp_path):
    "Equal CV means (an SVC whose large C values all separate the train folds): the earlier run first, as the text says."
    results = copy_of(results, tmp_path)
    status, out, err = call("sweep", "--out", results, "--data", small, "--model", "svc", "--grid", "C=300,1000,100", "--grid", "gamma=0.001",
                            "--cv", "3")
    assert status == 0, err
    assert "cross-validating Support vector classifier (RBF kernel) with 3 folds" in err and ") (" not in err
    assert "best first (of equal means, the earlier run)" in out.splitlines()[0]
    runs = {r["params"]["C"]: r for r in json.loads(call("runs", "--out", results, "--json")[1]) if r["sweep"]}
    shown = [float(line.split()[1].removeprefix("C=").rstrip(",")) for line in out.splitlines()[2:5]]
    means = [runs[c]["cv"]["mean"] for c in shown]
    assert len(set(means)) < 3, "no tie to order: the test needs candidates with equal CV means"
    for (a, b) in zip(shown, shown[1:]):
        assert runs[a]["cv"]["mean"] > runs[b]["cv"]["mean"] or (
            runs[a]["cv"]["mean"] == runs[b]["cv"]["mean"] and runs[a]["when"] < runs[b]["when"])


def test_a_resumed_sweep_says_how_many_were_done_and_how_many_it_fits_now(results, small, tmp_path, monkeypatch):
    "A sweep stopped after its first candidate (Ctrl-C, as KeyboardInterrupt, on the second), then the same sweep again."
    results = copy_of(results, tmp_path)
    import digits_tutorial.select as select
    real, calls = select.run_model, []
    def stopped_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2: raise KeyboardInterrupt
        return real(*args, **kwargs)
    sweep = ("sweep", "--out", results, "--data", small, "--model", "knn", "--grid", "k=1,3,5", "--cv", "3")
    with monkeypatch.context() as m:
        m.setattr(select, "run_model", stopped_at_the_second)
        assert call(*sweep, "--quiet")[0] == 130
    status, out, err = call(*sweep)
    assert status == 0, err
    assert "1 of 3 candidates were recorded before; fitting the other 2" in err
    assert "3 candidates (1 recorded before, as the sweep was stopped; 2 fitted now)" in out.splitlines()[-1]
    status, out, _ = call(*sweep, "--quiet")  # finished: the same sweep again fits nothing, and says so
    assert status == 0 and "3 candidates (all recorded before, by the same sweep: nothing fitted now)" in out


def test_the_board_says_how_it_orders_ties_and_lines_up():
    from digits_tutorial.classroom import board_text, class_board
    nan = float("nan")
    def row(learner, when, validation):
        return {"id": f"{learner}-{when}", "when": f"2026-01-01T10:00:0{when}", "learner": learner, "model": "knn",
                "params": {"k": 1}, "setting": "k=1", "seed": 0, "fractions": "0.6/0.2/0.2", "accuracy_validation": validation,
                "accuracy_test": nan, "augment": "none", "refit": False, "cv_mean": nan}
    rows = [row("a-learner-with-a-long-name.ok", 2, 0.95), row("bo", 1, 0.95), row("cy", 3, 0.97)]
    board = class_board(rows)
    assert [b["learner"] for b in board] == ["cy", "bo", "a-learner-with-a-long-name.ok"]  # 0.95 twice: bo's run was earlier
    head, columns, *lines = board_text(board).splitlines()
    assert "of equal scores, the earlier run first" in head
    start = columns.index("score") + len("score")
    assert [line[:start].split()[-1] for line in lines] == ["97.00%", "95.00%", "95.00%"]
