"""Every fit is a run recorded in Kosh: the command line, the run files and their loaders, models that cannot run code, and
runs that fail or race each other."""
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import kosh
import numpy as np
import pytest

from digits_tutorial.data import load_digits
from digits_tutorial.runs import (MODEL_NAME, UntrustedModel, load_model, load_run, record_run, run_model, runs_table,
                                  save_model)
from digits_tutorial.split import SPLITS, split_digits
from digits_tutorial.store import prepare_digits
from digits_tutorial.store import build_store, connect_store, read_stored_digits, store_info
from digits_tutorial.train import FitDidNotConverge, fit_checked

CLI = Path(sys.executable).with_name("digits-tutorial")
RUN_FILES = {"Train_Data_confusion_matrix.png", "Validation_Data_confusion_matrix.png", "Test_Data_confusion_matrix.png",
             "metrics.json", "split.csv", "model.skops"}


def digits_tutorial(*args):
    assert CLI.exists(), f"{CLI}: the command line is not installed beside this Python"
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    "Two `digits-tutorial run` calls with different models into one folder."
    out = tmp_path_factory.mktemp("runs") / "results"
    for model in ("logistic", "svc"):
        done = digits_tutorial("run", "--out", str(out), "--model", model, "--quiet")
        assert done.returncode == 0, done.stderr
    return out


def test_two_command_line_runs_keep_the_digits_and_add_two_runs(two_runs):
    store = kosh.connect(str(two_runs / "store.sql"), read_only=True)
    assert len(list(store.find(kind="digit", ids_only=True))) == 1797
    assert len(list((two_runs / "images").glob("*.png"))) == 1797
    runs = list(store.find(kind="run"))
    assert sorted(ds.model for ds in runs) == ["logistic", "svc"]
    stored_fingerprint = store_info(two_runs / "store.sql")["fingerprint"]
    bundled_fingerprint = prepare_digits("bundled").fingerprint  # the digits the command stored, read again from the file
    assert len(stored_fingerprint) == 16
    assert [ds.id for ds in store.find(kind="run", model="svc")] == [ds.id for ds in runs if ds.model == "svc"]
    assert len(list(store.find(label=3, split="test", ids_only=True))) == 37  # digit queries find digits only
    for ds in runs:
        folder = two_runs / "runs" / ds.id
        assert {p.name for p in folder.iterdir()} == RUN_FILES
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["model"] == ds.model and metrics["run"]["id"] == ds.id
        for split in SPLITS:
            assert getattr(ds, f"accuracy_{split}") == metrics["accuracy"][split]
            assert getattr(ds, f"n_{split}") == metrics["split"][split] == sum(map(sum, metrics["confusion_matrix"][split]))
        assert ds.sklearn_version and ds.digits_tutorial_version
        # the run names the data it was fitted on: the fingerprint of the store's digits, as the store and the data say
        assert ds.data_fingerprint == metrics["data"]["fingerprint"] == stored_fingerprint == bundled_fingerprint
    latest = json.loads((two_runs / "metrics.json").read_text())  # the top of the folder shows the latest run
    assert latest["model"] == "svc"


def test_runs_json_lists_both(two_runs):
    done = digits_tutorial("runs", "--out", str(two_runs), "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [r["model"] for r in listed] == ["logistic", "svc"]
    for r in listed:
        metrics = json.loads((two_runs / "runs" / r["id"] / "metrics.json").read_text())
        assert r["params"] == metrics["params"] and r["accuracy"] == metrics["accuracy"]
    table = digits_tutorial("runs", "--out", str(two_runs))
    assert table.returncode == 0 and table.stdout.startswith("2 runs in") and all(r["id"] in table.stdout for r in listed)


def test_runs_of_a_folder_without_a_store(tmp_path):
    done = digits_tutorial("runs", "--out", str(tmp_path))
    assert done.returncode == 1 and done.stderr.startswith("digits-tutorial: error: ") and "no store here" in done.stderr


def test_the_model_read_back_through_kosh_predicts_the_recorded_matrices(two_runs):
    store = connect_store(two_runs / "store.sql", read_only=True)
    digits = read_stored_digits(store)
    for ds in store.find(kind="run"):
        model = ds.get("model")
        split = dict(zip(ds.get("digit_ids"), ds.get("digit_splits")))
        for s in SPLITS:
            mask = np.array([split[i] == s for i in digits.ids])
            predicted = model.predict(digits.X[mask].astype(float))
            cm = np.zeros((10, 10), dtype=int)
            np.add.at(cm, (digits.y[mask], predicted), 1)
            assert (cm == ds.get(f"confusion_matrix_{s}")).all()
        assert ds.get("test_matrix_image").shape[2] == 4  # the PNG, through its loader


@pytest.fixture
def recorded(tmp_path):
    "A store of 300 digits with one recorded logistic run."
    digits = load_digits("bundled")[:300]
    digits.split = split_digits(digits.y, seed=0)
    settings = {"fractions": (0.6, 0.2, 0.2), "seed": 0, "stratify": True}
    store = connect_store(build_store(digits, tmp_path / "store", split_settings=settings))
    return store, run_model(store, "logistic")


def test_a_changed_model_file_is_refused(recorded):
    store, run = recorded
    [ds] = store.find(kind="run")
    path = run.folder / MODEL_NAME
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF  # one byte of the zip's end
    path.write_bytes(bytes(data))
    with pytest.raises(UntrustedModel, match="changed after its run recorded it"):
        ds.get("model")


def test_a_foreign_model_file_is_refused_even_with_its_hash_recorded(recorded, tmp_path):
    "A skops file that would call `os.system` on loading, put in place of the model, with its SHA-256 recorded too."
    import os
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    store, run = recorded
    evil = make_pipeline(FunctionTransformer(os.system))
    path = tmp_path / "evil.skops"
    sha = save_model(evil, path)
    with pytest.raises(UntrustedModel, match="holds types that a digits-tutorial model never holds"):
        load_model(path, sha256=sha)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(run.estimator))
    with pytest.raises(UntrustedModel, match="not a model saved by skops"):
        load_model(pickled)


def test_run_read_back_equals_the_run(recorded):
    store, run = recorded
    again = load_run(store, run.id, digits=read_stored_digits(store), with_model=True)
    assert (again.split == run.split).all() and (again.predicted == run.predicted).all()
    assert again.params == run.params and again.fractions == run.fractions and again.split_source == "store"
    assert (again.estimator.predict(read_stored_digits(store).X.astype(float)) == run.predicted).all()
    table = runs_table(store)
    assert list(table.id) == [run.id] and table.accuracy_validation[0] == run.accuracy["validation"]


def test_a_failed_run_records_nothing(recorded, monkeypatch):
    store, run = recorded
    import digits_tutorial.runs as runs
    def broken(*args, **kwargs): raise OSError("disk full")
    monkeypatch.setattr(runs, "save_model", broken)
    with pytest.raises(OSError, match="disk full"):
        run_model(store, "knn")
    assert [ds.id for ds in store.find(kind="run")] == [run.id]
    assert [p.name for p in (run.folder.parent).iterdir()] == [run.id]  # no partial folder left behind


def test_a_failed_association_removes_the_dataset(recorded, monkeypatch):
    "The run's dataset, made before its files are associated (of a kind that is not yet `run`), goes when associating fails."
    store, run = recorded
    import kosh.dataset
    before = sorted(store.find(ids_only=True))  # every dataset, whatever its kind
    def broken(self, *args, **kwargs): raise RuntimeError("database is locked")
    monkeypatch.setattr(kosh.dataset.KoshDataset, "associate", broken)
    with pytest.raises(RuntimeError, match="database is locked"):
        run_model(store, "knn")
    after = sorted(store.find(ids_only=True))
    assert after == before, f"left behind: {sorted(set(after) - set(before))}"
    assert [ds.id for ds in store.find(kind="run")] == [run.id]
    assert [p.name for p in (run.folder.parent).iterdir()] == [run.id]


def test_a_run_that_does_not_converge_is_an_error_that_says_what_to_do(recorded):
    from sklearn.linear_model import LogisticRegression
    store, _ = recorded
    digits = read_stored_digits(store)
    with pytest.raises(FitDidNotConverge, match="raw counts did not converge.*scale the features"):
        fit_checked(LogisticRegression(max_iter=5), digits.X, digits.y, what="logistic regression on raw counts")


NOT_CONVERGING = {"hidden": 4, "alpha": 1e-05}  # an MLP this small and this free stops at its 1,000 iterations, unconverged


def test_a_run_that_does_not_converge_stops_and_records_nothing(recorded):
    "The runs lesson's claim, through `run_model`: the fit's `ConvergenceWarning` stops the run before anything is written."
    store, run = recorded
    with pytest.raises(FitDidNotConverge, match=r"mlp \(hidden=4, alpha=1e-05\) did not converge.*alpha"):
        run_model(store, "mlp", NOT_CONVERGING)
    assert [ds.id for ds in store.find(kind="run")] == [run.id]
    assert [p.name for p in run.folder.parent.iterdir()] == [run.id]  # no folder, not even a partial one
    assert json.loads((run.folder.parent.parent / "metrics.json").read_text())["run"]["id"] == run.id  # the top still shows it


def test_a_command_line_run_that_does_not_converge_is_one_line_and_records_nothing(tmp_path):
    done = digits_tutorial("run", "--out", str(tmp_path), "--model", "mlp", "--param", "hidden=4", "--param", "alpha=0.00001",
                           "--quiet")
    assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("digits-tutorial: error: mlp (hidden=4, alpha=1e-05) did not converge")
    store = connect_store(tmp_path / "store.sql", read_only=True)  # the digits are stored: the run is what failed
    assert len(list(store.find(kind="digit", ids_only=True))) == 1797 and not list(store.find(kind="run", ids_only=True))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "metrics.json").exists() and not list(tmp_path.glob("*.png"))


def test_a_run_folder_and_the_latest_files_are_readable_by_others(recorded):
    "Temporary folders and files are private (0700, 0600): `make_public` gives them what the umask gives a new one."
    import os
    store, _ = recorded
    umask = os.umask(0o022)  # the common umask, so that private (0700) and public (0755) differ
    try:
        run = run_model(store, "knn")
    finally:
        os.umask(umask)
    mode = lambda p: oct(p.stat().st_mode & 0o777)
    assert mode(run.folder) == oct(0o755), "the run's folder is private: make_public did not run on it"
    assert {mode(p) for p in run.folder.iterdir()} == {oct(0o644)}
    top = run.folder.parent.parent
    assert {mode(top / name) for name in ("metrics.json", "Test_Data_confusion_matrix.png")} == {oct(0o644)}


def test_other_warnings_pass_through_as_warnings(recorded):
    "A warning from a future scikit-learn must not stop a run: it is shown, and the fit goes on."
    from sklearn.base import BaseEstimator, ClassifierMixin
    class Announcing(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            warnings.warn("this default will change in a future version", FutureWarning)
            self.classes_ = np.unique(y)
            return self
    store, _ = recorded
    digits = read_stored_digits(store)
    with pytest.warns(FutureWarning, match="will change"):
        fitted = fit_checked(Announcing(), digits.X, digits.y)
    assert list(fitted.classes_) == list(range(10))


def test_a_run_with_a_seed_is_made_again_with_that_seed(recorded):
    "A random forest's trees depend on its seed: made again from its record, it must be fitted with the recorded one."
    from digits_tutorial.runs import rerun_run
    store, _ = recorded
    run = run_model(store, "random_forest", {"n_trees": 5, "max_depth": 4}, seed=3)
    other = run_model(store, "random_forest", {"n_trees": 5, "max_depth": 4}, seed=0, record=False)
    assert (other.predicted != run.predicted).any()  # the seed matters on these digits: a rerun with another one shows
    done = rerun_run(store, run.id)
    assert done.again.seed == 3 and done.same, f"{len(done.differing)} predictions differ"


def test_a_run_recorded_not_as_the_latest_leaves_the_top_of_the_folder_alone(recorded):
    "A sweep records its candidates with latest=False: the top of the folder keeps showing the run it showed."
    store, first = recorded
    top = first.folder.parent.parent
    shown = {name: (top / name).read_bytes() for name in RUN_FILES - {"split.csv", MODEL_NAME}}
    assert json.loads(shown["metrics.json"])["run"]["id"] == first.id
    candidate = run_model(store, "knn", {"k": 3}, latest=False)
    assert candidate.folder.is_dir() and {p.name for p in candidate.folder.iterdir()} == RUN_FILES
    assert {name: (top / name).read_bytes() for name in shown} == shown


def test_a_run_is_recorded_under_its_folders_lock(recorded, monkeypatch):
    """Two processes recording runs into one folder take turns (`folder_lock`): the moment the run's dataset is written
    (as a run being recorded, until its files are associated), its folder's lock file is held, so that another process's
    attempt to take it fails."""
    import fcntl
    from digits_tutorial.runs import RUN_KIND, _recording_kind
    from digits_tutorial.store import store_folder
    store, _ = recorded
    lock_file, seen = store_info(store)["folder"] + "/.store.lock", []
    kinds = {RUN_KIND, _recording_kind(store_folder(store))}
    create = store.create

    def create_and_look(*args, **kwargs):
        if (kwargs.get("metadata") or {}).get("kind") in kinds and not os.path.exists(lock_file):
            seen.append("free (no lock file)")  # the lock leaves no file once let go
        elif (kwargs.get("metadata") or {}).get("kind") in kinds:
            fd = os.open(lock_file, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what another process does: an open file of its own
                seen.append("free")
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                seen.append("held")
            finally:
                os.close(fd)
        return create(*args, **kwargs)
    monkeypatch.setattr(store, "create", create_and_look)
    run_model(store, "knn")
    assert seen == ["held"], seen


def test_another_split_is_drawn_and_recorded(recorded):
    store, first = recorded
    run = run_model(store, "logistic", seed=3, fractions=(0.5, 0.25, 0.25))
    assert run.split_source == "drawn" and run.counts() == {"train": 150, "validation": 75, "test": 75}
    assert (run.split != first.split).any()
    again = load_run(store, run.id, digits=read_stored_digits(store))
    assert (again.split == run.split).all() and again.fractions == (0.5, 0.25, 0.25) and again.seed == 3
    same = run_model(store, "logistic", seed=0, fractions=(0.6, 0.2, 0.2), record=False)  # the store's own settings
    assert same.split_source == "store" and (same.split == first.split).all()
