"""A Fit in the lab shows its results first and records its run after, in the background (issue 27): the record is written
whole or not at all whatever ends the process, `runs` never lists half a run, fits queue in order, and a run recorded in
the background looks to `runs`, `rerun`, `export` and `import` exactly like one recorded by `digits-tutorial run`.

No test here is timed: how fast a Fit is on screen is the benchmark's to judge (lesson 13). The processes started here end
themselves at the moment a test needs (right after `fit()`, or while the run's files are being written), so that what is
checked is what a learner's kernel or script would leave.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from digits_tutorial.runs import MODEL_NAME, METRICS_NAME, SPLIT_NAME, load_run, run_rows
from digits_tutorial.store import connect_store
from digits_tutorial.widgets import DigitsLab, LabState, count_confusions

RUN_FILES = sorted([METRICS_NAME, SPLIT_NAME, MODEL_NAME, "Train_Data_confusion_matrix.png",
                    "Validation_Data_confusion_matrix.png", "Test_Data_confusion_matrix.png"])


@pytest.fixture(scope="module")
def small_results(tmp_path_factory, cli, small) -> Path:
    "A folder made by `digits-tutorial run` on the 300 small digits: one run of the command's (logistic regression)."
    out = tmp_path_factory.mktemp("lab-speed") / "results"
    done = cli("run", "--out", out, "--data", small, "--quiet")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def results(small_results, tmp_path) -> Path:
    "A copy of `small_results` of the test's own."
    return Path(shutil.copytree(small_results, tmp_path / "results"))


def runs_listed(cli, out) -> list[dict]:
    done = cli("runs", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def left_behind(out) -> list[str]:
    "What an unfinished record leaves: partial folders, old copies, the lock file."
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if ".partial-" in p.name or ".old-" in p.name or p.name == ".store.lock")


def check_whole(out):
    "Every run folder is a recorded run, and every recorded run is whole: its six files there, and read back through Kosh."
    store = connect_store(out / "store.sql", read_only=True)
    recorded = [r["id"] for r in run_rows(out / "store.sql")]
    assert sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")) == sorted(recorded)
    for run_id in recorded:
        assert sorted(p.name for p in (out / "runs" / run_id).iterdir()) == RUN_FILES, run_id
        assert load_run(store, run_id, with_model=True).estimator is not None
    return recorded


def lab_process(out, then: str, env=None) -> subprocess.Popen:
    """A Python process that opens the lab on `out`, fits k-nearest neighbours, prints the run's id and whether its record
    was still being written, then runs `then` (the end of the process)."""
    code = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from digits_tutorial.widgets import open_lab
        lab = open_lab({str(out)!r})
        lab.model.value = "knn"
        lab.fit()
        assert lab.state.error is None, lab.state.error
        print(lab.state.result.id, lab.state.recording(lab.state.result.id), flush=True)
    """) + textwrap.dedent(then)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or dict(os.environ, MPLBACKEND="Agg"))


ENDINGS = {  # how the process ends right after fit(), and the status it ends with
    "the script ends": ("", 0),
    "sys.exit": ("sys.exit(3)", 3),
    "Ctrl-C": ("os.kill(os.getpid(), signal.SIGINT); time.sleep(60)", 1),  # KeyboardInterrupt in the main thread
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_fit_is_recorded_whole_when_the_process_ends_right_after_it(results, cli, ending):
    then, status = ENDINGS[ending]
    process = lab_process(results, then)
    out, err = process.communicate(timeout=300)
    assert process.returncode == status, err
    run_id, was_recording = out.split()
    assert was_recording == "True", "the record was written before the process ended: the test tested nothing"
    listed = runs_listed(cli, results)
    assert [r["id"] for r in listed][-1] == run_id and listed[-1]["model"] == "knn" and len(listed) == 2
    assert run_id in check_whole(results) and left_behind(results) == []


def test_a_fit_is_recorded_whole_when_its_kernel_is_shut_down_right_after_it(results, cli):
    "In a real Jupyter kernel, as JupyterLab or Voila runs the lab: fit, and at once the kernel is asked to shut down."
    from jupyter_client.manager import start_new_kernel
    from test_lab_app import isolated_jupyter
    env = {**isolated_jupyter(results.parent / "jupyter"), "MPLBACKEND": "Agg"}
    manager, client = start_new_kernel(kernel_name="python3", env=env)
    try:
        code = (f"from digits_tutorial.widgets import open_lab\nlab = open_lab({str(results)!r})\nlab.model.value = 'svc'\n"
                "lab.fit()\nprint(lab.state.result.id, lab.state.recording(lab.state.result.id))")
        said = []
        reply = client.execute_interactive(code, timeout=300, output_hook=lambda m: said.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
        run_id, was_recording = "".join(said).split()
        manager.shutdown_wait_time = 60  # the time a kernel is given to end before it is killed: the lab app gives it as much
        manager.shutdown_kernel(now=False)  # a shutdown request, as the server sends it
    finally:
        client.stop_channels()
        if manager.is_alive(): manager.shutdown_kernel(now=True)
    assert was_recording == "True", "the record was written before the kernel was shut down: the test tested nothing"
    assert [r["id"] for r in runs_listed(cli, results)][-1] == run_id
    assert run_id in check_whole(results) and left_behind(results) == []


def written(out) -> bool:
    "Whether a run's files are being written in `out` (its partial folder holds a file)."
    return any((out / "runs").glob(".*.partial-*/*"))


KILLED = {  # when the process kills itself (SIGKILL: nothing of it runs after), after fit()
    "right after fit()": "os.kill(os.getpid(), signal.SIGKILL)",
    "while the run's files are written": """
        runs = lab.out_folder / "runs"
        while not any(runs.glob(".*.partial-*/*")): time.sleep(0.0005)
        os.kill(os.getpid(), signal.SIGKILL)
    """,
}


@pytest.mark.parametrize("moment", list(KILLED))
def test_a_fit_killed_before_its_record_leaves_no_half_run_and_the_next_run_cleans_up(results, cli, small, moment):
    before = runs_listed(cli, results)
    process = lab_process(results, KILLED[moment])
    out, err = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, err
    run_id, _ = out.split()
    assert runs_listed(cli, results) == before  # not the killed fit's run, not half of it
    if moment != "right after fit()":
        assert any(".partial-" in p for p in left_behind(results)), "nothing was being written: the test tested nothing"
    assert not (results / "runs" / run_id).exists()
    done = cli("run", "--out", results, "--data", small, "--quiet")
    assert done.returncode == 0, done.stderr
    assert left_behind(results) == [] and len(check_whole(results)) == len(before) + 1


def test_two_fits_back_to_back_are_both_recorded_whole_in_order(results):
    store = connect_store(results / "store.sql")
    state = LabState(store)
    fitted = []
    for model in ("knn", "svc"):
        state.set_model(model)
        assert state.fit(), state.error
        fitted.append(state.result.id)
    assert state.recording(fitted[1])  # the second fit did not wait for the first record
    assert [run_id for _, run_id in state.runs()][-2:] == fitted  # listed at once, as fitted
    assert state.wait_recorded(timeout=300) and not state.recording() and state.not_recorded == {}
    assert [r["id"] for r in run_rows(store)][-2:] == fitted
    assert set(fitted) <= set(check_whole(results)) and left_behind(results) == []
    assert [run_id for _, run_id in state.runs()][-2:] == fitted


def test_a_record_that_fails_is_said_and_the_lab_keeps_working(results, monkeypatch):
    import digits_tutorial.widgets as widgets
    lab = DigitsLab(connect_store(results / "store.sql"), out_folder=results)
    def full_disk(store, run, **kwargs): raise OSError(28, "No space left on device")
    monkeypatch.setattr(widgets, "record_run", full_disk)
    lab.fit()
    assert lab.wait_recorded(timeout=300)
    failed = lab.state.result.id
    assert "could not be recorded in the store: [Errno 28] No space left on device" in lab.status.value
    assert failed not in [run_id for _, run_id in lab.state.runs()] and lab.runs.value is None
    monkeypatch.undo()
    lab.fit()
    assert lab.wait_recorded(timeout=300) and lab.runs.value == lab.state.result.id != failed
    assert "Recording" not in lab.status.value and "could not" not in lab.status.value


def test_the_recorder_draws_no_pyplot_figure(results, monkeypatch):
    """The recorder draws the matrices on bare Figures: pyplot's list of figures, which a notebook shows at the end of
    whatever cell is running, never holds them, even while they are drawn."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    before, during, savefig = plt.get_fignums(), [], Figure.savefig
    def watched(fig, *args, **kwargs):
        during.append(set(plt.get_fignums()) - set(before))
        return savefig(fig, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", watched)
    state = LabState(connect_store(results / "store.sql"))
    assert state.fit() and state.wait_recorded(timeout=300)
    assert len(during) == 3 and during == [set()] * 3 and plt.get_fignums() == before
    figures = [results / "runs" / state.result.id / f"{s}_Data_confusion_matrix.png" for s in ("Train", "Validation", "Test")]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)


def test_runs_recorded_by_the_lab_look_like_runs_recorded_by_the_command(results, cli, small, tmp_path):
    "Same files, same Kosh metadata, same `runs --json` keys; `rerun` makes the lab's run again; export and import carry it."
    store = connect_store(results / "store.sql")
    lab = DigitsLab(store, out_folder=results)
    lab.fit()  # the command's run was logistic regression on the store's split: the same settings
    assert lab.wait_recorded(timeout=300)
    command_run, lab_run = runs_listed(cli, results)
    assert lab_run["id"] == lab.state.result.id and command_run["model"] == lab_run["model"] == "logistic"
    assert set(command_run) == set(lab_run) and command_run["accuracy"] == lab_run["accuracy"]
    assert command_run["params"] == lab_run["params"] and command_run["split_source"] == lab_run["split_source"] == "store"
    for run in (command_run, lab_run):
        assert sorted(p.name for p in Path(run["folder"]).iterdir()) == RUN_FILES
    metadata = [store.find(kind="run", id_pool=[run["id"]]).__next__().list_attributes(dictionary=True)
                for run in (command_run, lab_run)]
    assert set(metadata[0]) == set(metadata[1])
    differ = {k for k in metadata[0] if metadata[0][k] != metadata[1][k]}
    assert differ <= {"name", "id", "when", "fit_seconds", "learner", "creation_date", "last_modified_date"}, differ
    metrics = [json.loads((Path(run["folder"]) / METRICS_NAME).read_text()) for run in (command_run, lab_run)]
    assert metrics[0]["confusion_matrix"] == metrics[1]["confusion_matrix"] and set(metrics[0]) == set(metrics[1])
    assert (Path(command_run["folder"]) / SPLIT_NAME).read_text() == (Path(lab_run["folder"]) / SPLIT_NAME).read_text()
    done = cli("rerun", lab_run["id"], "--out", results)
    assert done.returncode == 0, done.stdout + done.stderr
    archive = tmp_path / "lab-run.zip"
    assert cli("export", lab_run["id"], "--out", results, "--to", archive).returncode == 0
    other = tmp_path / "other"
    assert cli("run", "--out", other, "--data", small, "--quiet").returncode == 0
    done = cli("import", archive, "--out", other)
    assert done.returncode == 0, done.stderr
    imported = [r for r in runs_listed(cli, other) if r["id"] == lab_run["id"]]
    assert len(imported) == 1 and imported[0]["accuracy"] == lab_run["accuracy"]
    assert cli("rerun", lab_run["id"], "--out", other).returncode == 0


def test_the_lab_counts_its_matrices_and_colours_them_as_scikit_learn_and_matplotlib_do(results):
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    from digits_tutorial.widgets import _cell_colour
    state = LabState(connect_store(results / "store.sql"))
    for model in ("logistic", "knn"):
        state.set_model(model)
        assert state.fit()
        assert all((count_confusions(state.result)[s] == state.result.matrices[s]).all() for s in state.result.matrices)
    assert state.wait_recorded(timeout=300)
    for value in np.linspace(0, 100, 2001):
        assert _cell_colour(value, 100)[0] == to_hex(colormaps["Blues"](0.05 + 0.9 * value / 100)), value


def test_opening_the_lab_imports_neither_scikit_learn_nor_matplotlib(results):
    "The first screen needs neither: they are imported at the first Fit (scikit-learn) or the first picture (matplotlib)."
    code = (f"import sys\nfrom digits_tutorial.widgets import open_lab\nlab = open_lab({str(results)!r})\n"
            "assert lab.state.result is not None and lab.cells[0][0].description\n"
            "print(sorted(m for m in ('sklearn', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
