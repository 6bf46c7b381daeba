"""Sweeps: a cross-validated grid from `digits-tutorial sweep`, every candidate a run, the same table on one machine and on a
real Dask cluster (a scheduler and two workers on 127.0.0.1), and cross-validation that augments the train folds only."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from digits_tutorial.data import load_digits
from digits_tutorial.improve import shift_digits
from digits_tutorial.select import cross_validate_grid
from digits_tutorial.store import connect_store
from digits_tutorial.train import fit_model

BIN = Path(sys.executable).parent
GRID = ["--model", "svc", "--grid", "C=1,5", "--grid", "gamma=0.001", "--cv", "3", "--quiet"]  # two candidates: a ranking


def digits_tutorial(*args, timeout=600):
    assert (BIN / "digits-tutorial").exists(), f"{BIN / 'digits-tutorial'}: the command line is not installed beside this Python"
    return subprocess.run([str(BIN / "digits-tutorial"), *args], capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try: process.wait(20)
        except subprocess.TimeoutExpired: process.kill(); process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    "A Dask scheduler and two single-threaded workers, separate processes on 127.0.0.1, as `dask scheduler`/`dask worker` start them."
    from distributed import Client
    address = f"tcp://127.0.0.1:{_free_port()}"
    logs = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the workers import this very digits_tutorial
    started = []
    try:
        with open(logs / "scheduler.log", "w") as log:
            started.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                             "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, env=env))
        with open(logs / "workers.log", "w") as log:
            started.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                             "--no-dashboard", "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, env=env))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            yield address, client
    finally:
        for process in reversed(started): _stop(process)


def _executed(client) -> int:
    "How many tasks the workers of the cluster have run so far."
    return sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())


@pytest.fixture(scope="module")
def sweeps(cluster, tmp_path_factory):
    "The same sweep on this machine and on the cluster, each into its own folder."
    address, client = cluster
    out = tmp_path_factory.mktemp("sweeps")
    start = time.perf_counter()
    local = digits_tutorial("sweep", "--out", str(out / "local"), *GRID)
    seconds_local = time.perf_counter() - start
    before = _executed(client)
    start = time.perf_counter()
    dask = digits_tutorial("sweep", "--out", str(out / "dask"), *GRID, "--scheduler", address)
    seconds_dask = time.perf_counter() - start
    print(f"sweep: {seconds_local:.1f} s on this machine, {seconds_dask:.1f} s through the Dask cluster")
    return out, local, dask, _executed(client) - before


def test_the_sweep_prints_one_line_per_candidate_with_mean_and_spread(sweeps):
    out, local, _, _ = sweeps
    assert local.returncode == 0, local.stderr
    lines = local.stdout.strip().splitlines()
    assert lines[0] == "svc: 2 candidates, 3-fold cross-validation on the train split; best first (of equal means, the earlier run)"
    assert lines[1].split() == ["rank", "setting", "CV", "mean", "CV", "std", "valid."]
    assert [int(line.split()[0]) for line in lines[2:4]] == [1, 2]
    means = [float(line.split()[-3].rstrip("%")) for line in lines[2:4]]
    assert means == sorted(means, reverse=True) and means[0] > 97
    assert len(lines) == 5 and lines[4].startswith(f"2 candidates, each a run in {out / 'local' / 'store.sql'}; the top of the folder shows rank 1 (")


def test_every_candidate_is_a_run_with_its_cross_validation(sweeps):
    out, local, _, _ = sweeps
    store = connect_store(out / "local" / "store.sql", read_only=True)
    runs = list(store.find(kind="run"))
    assert sorted((ds.param_C, ds.param_gamma) for ds in runs) == [(1, 0.001), (5, 0.001)]
    for ds in runs:
        assert ds.cv_folds == 3 and 0 < ds.cv_std < 0.05 and 0.95 < ds.cv_mean <= 1
        assert ds.n_train == 1079 and ds.n_fitted == 1079 and ds.augment == "none" and ds.refit is False
        row = next(l for l in local.stdout.splitlines() if f"C={ds.param_C:g}, gamma={ds.param_gamma:g} " in l)
        assert f"{ds.cv_mean:.2%}" in row and f"{ds.cv_std:.2%}" in row and f"{ds.accuracy_validation:.2%}" in row


def test_a_candidate_keeps_its_numbers_and_model_and_the_top_shows_the_chosen_ones_matrices(sweeps, tmp_path):
    """A sweep's candidate keeps `metrics.json` (its matrices as numbers), `split.csv` and its model, no PNG; the top of the
    folder shows the matrices of the candidate the sweep chose, drawn and titled with its run id; a candidate travels and
    re-runs like any run."""
    from PIL import Image
    from digits_tutorial.runs import export_run, import_run, load_run, rerun_run
    from digits_tutorial.store import build_store
    out, _, _, _ = sweeps
    store = connect_store(out / "local" / "store.sql", read_only=True)
    chosen = next(iter(store.find(kind="sweep"))).chosen
    for ds in store.find(kind="run"):
        assert {p.name for p in (out / "local" / "runs" / ds.id).iterdir()} == {"metrics.json", "split.csv", "model.skops"}
        assert {f.mime_type for f in ds.find()} == {"run-metrics", "run-split", "skops"}, ds.id
    run = load_run(store, chosen)
    for split in ("Train", "Validation", "Test"):
        with Image.open(out / "local" / f"{split}_Data_confusion_matrix.png") as png:
            assert png.size[0] > 500 and f"run {chosen}" in png.info["Title"], png.info
    assert (out / "local" / "metrics.json").read_bytes() == (run.folder / "metrics.json").read_bytes()
    assert rerun_run(store, chosen).same
    archive = export_run(store, chosen, to=tmp_path / "candidate.zip")
    digits = load_digits("bundled")
    digits.split = run.split  # the digits of the sweep's store, split as it was
    other = connect_store(build_store(digits, tmp_path / "other"))
    moved = import_run(other, archive)
    assert moved.id == chosen and (moved.predicted == run.predicted).all()
    assert {p.name for p in moved.folder.iterdir()} == {"metrics.json", "split.csv", "model.skops"}


def test_the_folds_score_as_scikit_learns_own_search_in_the_calling_thread(monkeypatch):
    """Each candidate's scores are those of scikit-learn's `GridSearchCV`, fold after fold, and every fold is fit in the
    thread that asked: scikit-learn fits a fold inside `warnings.catch_warnings`, which is not thread-safe (folds in threads
    beside a sweep's other threads once left the process's warning filters empty, and CI saw scikit-learn's warning)."""
    import threading
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC
    from digits_tutorial.select import RegistryClassifier, stratified_folds
    threads, fit = set(), RegistryClassifier.fit
    monkeypatch.setattr(RegistryClassifier, "fit", lambda self, *a, **k: threads.add(threading.get_ident()) or fit(self, *a, **k))
    digits = load_digits("bundled")[:600]
    ours = cross_validate_grid(digits.X, digits.y, "svc", {"C": [1, 5], "gamma": [0.001]}, cv=3)
    assert threads == {threading.get_ident()}, f"the folds were fit in {len(threads)} threads"
    plain = GridSearchCV(SVC(random_state=0), {"C": [1, 5], "gamma": [0.001]}, cv=stratified_folds(3, 0)).fit(
        np.asarray(digits.X, dtype=np.float64), digits.y)
    assert ours.cv_mean.tolist() == plain.cv_results_["mean_test_score"].tolist()
    assert [s.tolist() for s in ours.fold_scores] == [[plain.cv_results_[f"split{i}_test_score"][c] for i in range(3)] for c in range(2)]


def test_the_dask_cluster_gives_the_same_table(sweeps):
    out, local, dask, tasks = sweeps
    assert dask.returncode == 0, dask.stderr
    assert tasks >= 2 * 3, f"the workers ran {tasks} tasks: the folds did not go to the cluster"
    assert dask.stdout.splitlines()[:-1] == local.stdout.splitlines()[:-1]

    def figures(folder):
        store = connect_store(folder / "store.sql", read_only=True)
        return sorted((ds.param_C, ds.param_gamma, ds.cv_mean, ds.cv_std, ds.accuracy_validation) for ds in store.find(kind="run"))
    assert figures(out / "dask") == figures(out / "local")  # to the last bit, not only as printed


def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path):
    done = digits_tutorial("sweep", "--out", str(tmp_path / "out"), *GRID, "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("digits-tutorial: error: tcp://127.0.0.1:") and "no Dask scheduler answers there" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_grid_is_one_line(tmp_path):
    done = digits_tutorial("sweep", "--out", str(tmp_path / "out"), "--model", "knn", "--grid", "C=1,2")
    assert done.returncode == 1 and done.stderr == "digits-tutorial: error: knn has no setting C; its settings are k\n"
    done = digits_tutorial("sweep", "--out", str(tmp_path / "out"), "--model", "knn", "--grid", "k=1,0")
    assert done.returncode == 1 and done.stderr == "digits-tutorial: error: k is 0, expected a whole number from 1 to 50\n"
    assert not (tmp_path / "out").exists()


def test_cross_validation_shifts_the_train_folds_only():
    "Each fold's model learns from the shifted train folds and is scored on the held-out fold as it is."
    from sklearn.model_selection import StratifiedKFold
    digits = load_digits("bundled")[:600]
    table = cross_validate_grid(digits.X, digits.y, "svc", {"C": [5]}, cv=3, seed=0, augment="shifts")
    expected = []
    for train, held_out in StratifiedKFold(3, shuffle=True, random_state=0).split(digits.X, digits.y):
        model = fit_model("svc", *shift_digits(digits.X[train], digits.y[train]), C=5)
        expected.append(model.score(digits.X[held_out].astype(float), digits.y[held_out]))
    assert np.allclose(table.fold_scores[0], expected) and table.cv_mean[0] == pytest.approx(np.mean(expected))
    assert table.cv_std[0] == pytest.approx(np.std(expected))


def test_a_resumed_sweep_cross_validates_only_the_candidates_it_had_not_finished(tmp_path, monkeypatch):
    "A sweep stopped after its first candidate was recorded; the same sweep again cross-validates the second one only."
    import digits_tutorial.select as select
    from digits_tutorial.split import split_digits
    from digits_tutorial.store import build_store, read_stored_digits
    digits = load_digits("bundled")[:200]
    digits.split = split_digits(digits.y, seed=0)
    store = connect_store(build_store(digits, tmp_path))
    stored, record = read_stored_digits(store), select.run_model

    def stopped_at_the_second(store, model, params, *args, **kwargs):
        if params == {"k": 3}: raise KeyboardInterrupt  # Ctrl-C, once the first candidate is recorded
        return record(store, model, params, *args, **kwargs)
    monkeypatch.setattr(select, "run_model", stopped_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        select.sweep_model(store, "knn", {"k": [1, 3]}, cv=2, digits=stored)
    assert [r["params"] for r in select.run_rows(store)] == [{"k": 1}]

    validated, validate = [], select.cross_validate_grid
    def counted(X, y, model, grid, *args, **kwargs):
        validated.append(grid)
        return validate(X, y, model, grid, *args, **kwargs)
    monkeypatch.setattr(select, "run_model", record)
    monkeypatch.setattr(select, "cross_validate_grid", counted)
    table = select.sweep_model(store, "knn", {"k": [1, 3]}, cv=2, digits=stored)
    assert validated == [{"k": [3]}] and sorted(table.setting) == ["k=1", "k=3"]
    assert sorted(r["params"]["k"] for r in select.run_rows(store)) == [1, 3]


def test_a_sweep_with_shifts_records_nine_times_the_train_digits(tmp_path):
    done = digits_tutorial("sweep", "--out", str(tmp_path), "--model", "knn", "--grid", "k=1", "--cv", "2", "--augment", "shifts",
                           "--quiet")
    assert done.returncode == 0, done.stderr
    assert "2-fold cross-validation on the train split, train folds shifted" in done.stdout
    [ds] = connect_store(tmp_path / "store.sql", read_only=True).find(kind="run")
    assert ds.augment == "shifts" and ds.n_fitted == 9 * ds.n_train and ds.cv_folds == 2 and ds.accuracy_validation > 0.97


def test_a_failure_in_the_next_candidates_folds_stops_the_sweep_with_the_earlier_candidates_whole(tmp_path, monkeypatch):
    "The second candidate is cross-validated in a thread while the first is recorded: its error is the sweep's, after the first."
    import digits_tutorial.select as select
    from digits_tutorial.split import split_digits
    from digits_tutorial.store import build_store, read_stored_digits
    digits = load_digits("bundled")[:200]
    digits.split = split_digits(digits.y, seed=0)
    store = connect_store(build_store(digits, tmp_path))
    validate = select.cross_validate_grid

    def failing_for_k3(X, y, model, grid, *args, **kwargs):
        if grid == {"k": [3]}: raise ValueError("the folds of k=3 failed")
        return validate(X, y, model, grid, *args, **kwargs)
    monkeypatch.setattr(select, "cross_validate_grid", failing_for_k3)
    with pytest.raises(ValueError, match="the folds of k=3 failed"):
        select.sweep_model(store, "knn", {"k": [1, 3]}, cv=2, digits=read_stored_digits(store))
    assert [r["params"] for r in select.run_rows(store)] == [{"k": 1}]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # no partial run folder left


def test_a_sweep_draws_and_saves_in_its_helper_and_says_where_its_time_went(tmp_path):
    "Where the time of `digits-tutorial sweep` goes, as the benchmark reads it: the matrices drawn and the models saved by the helper."
    import json
    env = {**os.environ, "DIGITS_TUTORIAL_PHASES": str(tmp_path / "phases.json")}
    done = subprocess.run([str(BIN / "digits-tutorial"), "sweep", "--out", str(tmp_path / "out"), "--model", "knn", "--grid", "k=1,3",
                           "--cv", "2", "--quiet"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    phases = json.loads((tmp_path / "phases.json").read_text())["phases"]
    assert {"figures (helper)", "model (helper)", "cross-validation", "store", "record"} <= set(phases), phases
    assert "figures" not in phases and "model" not in phases  # nothing drawn or saved by the sweep's own process
    assert len(list(connect_store(tmp_path / "out" / "store.sql", read_only=True).find(kind="run", ids_only=True))) == 2
