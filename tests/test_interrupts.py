"""Ctrl-C and a killed process, the way they happen (issue 26): real SIGINT sent to a real `digits-tutorial run` at moments
chosen by what the process is doing (seen from outside: the libraries it has mapped, the files it is writing), and a
process killed (SIGKILL) while it writes its store.

Every Ctrl-C from the moment the command's code runs ends with one line and status 130, and leaves nothing half-written:
no partial file, no lock file, and a store, if there is one, whole. What a killed process leaves, the next run removes.
The first milliseconds of a process, before Python runs any of the command's code, are measured, not tested here: lesson 10
says what happens in them.
"""
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("digits-tutorial")
INTERRUPTED = "digits-tutorial: interrupted\n"


def sizes(out, pattern) -> list[int]:
    "The sizes of the files of `out` that match `pattern` (a file that vanishes meanwhile counts as none)."
    found = []
    for p in out.glob(pattern):
        try: found.append(p.stat().st_size)
        except FileNotFoundError: pass
    return found


def mapped(pid, part) -> bool:
    "Whether process `pid` has mapped a file whose path holds `part` (a shared library it imported)."
    try: return part in Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError): return False


MOMENTS = {  # what the process is doing when Ctrl-C comes, as seen from outside
    "importing numpy": lambda p, out: mapped(p.pid, "_multiarray_umath"),
    "importing scikit-learn": lambda p, out: mapped(p.pid, "sklearn/"),
    "writing the images": lambda p, out: any(out.glob(".images.partial-*/*.png")),
    "making the store": lambda p, out: any(out.glob(".store.partial-*.sql")),  # Kosh opens it, makes its tables
    "in a transaction of the store": lambda p, out: any(out.glob(".store.partial-*.sql-journal")),  # SQLite's journal beside it
    "filling the store": lambda p, out: any(size > 200_000 for size in sizes(out, ".store.partial-*.sql")),  # the digits in
    "writing the run's files": lambda p, out: any(out.glob("runs/.*.partial-*/*")),
}


def start_run(out, small, env=None):
    return subprocess.Popen([str(SCRIPT), "run", "--out", str(out), "--data", str(small), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or dict(os.environ, MPLBACKEND="Agg"))


def wait_for(process, moment, out, timeout=120) -> bool:
    "Poll every millisecond or so until `moment` happens in `process`; False if the process ended first."
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if MOMENTS[moment](process, out): return True
        time.sleep(0.001)
    return False


def left_behind(out) -> list[str]:
    "What a stopped command must not leave: partial files and folders, old copies, the lock file."
    if not out.exists(): return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if ".partial-" in p.name or ".old-" in p.name or p.name == ".store.lock")


def check_whole(out):
    "A store that is there holds all its digits, read back through Kosh; every run folder is a recorded run."
    if not (out / "store.sql").exists(): return
    from digits_tutorial.runs import run_rows
    from digits_tutorial.store import connect_store, read_stored_digits, store_info
    store = connect_store(out / "store.sql", read_only=True)
    assert store_info(out / "store.sql")["n_digits"] == 300 == len(read_stored_digits(store))
    recorded = {r["id"] for r in run_rows(out / "store.sql")}
    on_disk = {p.name for p in (out / "runs").iterdir()} if (out / "runs").exists() else set()
    assert on_disk == recorded


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_is_one_line_and_leaves_nothing_half_written(moment, small, tmp_path):
    out = tmp_path / "results"
    process = start_run(out, small)
    try:
        seen = wait_for(process, moment, out)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None: process.kill()
    assert seen, f"the run ended before {moment}: nothing was tested (status {process.returncode}, {err!r})"
    assert (process.returncode, err) == (130, INTERRUPTED)
    assert left_behind(out) == []
    check_whole(out)


@pytest.mark.parametrize("moment", ["making the store", "in a transaction of the store"])
def test_what_a_killed_run_left_the_next_run_removes(moment, small, tmp_path):
    "SIGKILL while the store is written (no handler runs): leftovers (SQLite's journal too); the next run in the folder removes them and runs."
    out = tmp_path / "results"
    process = start_run(out, small)
    try:
        assert wait_for(process, moment, out), f"the run ended before {moment}"
        process.kill()
        process.wait(60)
    finally:
        if process.poll() is None: process.kill()
    left = left_behind(out)
    assert any(".store.partial-" in p for p in left) and any(".images.partial-" in p for p in left), left
    done = subprocess.run([str(SCRIPT), "run", "--out", str(out), "--data", str(small), "--quiet"], capture_output=True,
                          text=True, env=dict(os.environ, MPLBACKEND="Agg"), timeout=600)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert left_behind(out) == []
    check_whole(out)


def ctrl_c_after(make):
    """`make` (tempfile's mkdtemp or mkstemp) that sends this process Ctrl-C once it has made its folder or file: Python runs
    the handler at its next instruction, before the caller has the name of what was made."""
    def made_then_ctrl_c(*args, **kwargs):
        made = make(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return made
    return made_then_ctrl_c


def unpack_small_archive(folder, ctrl_c_armed):
    import zipfile
    from digits_tutorial.plumbing import unpack_all_or_nothing
    with zipfile.ZipFile(folder / "a.zip", "w") as zf: zf.writestr("a.txt", "a")
    with ctrl_c_armed():
        unpack_all_or_nothing(folder / "a.zip", folder / "unpacked")


def store_small_digits(folder, ctrl_c_armed=nullcontext):
    from digits_tutorial.data import bundled_digits
    from digits_tutorial.split import split_digits
    from digits_tutorial.store import build_store
    digits = bundled_digits()[:100]
    digits.split = split_digits(digits.y, seed=0)
    with ctrl_c_armed():
        build_store(digits, folder / "results")


def copy_a_file(folder, ctrl_c_armed):
    from digits_tutorial.plumbing import replace_copy
    (folder / "source.txt").write_text("a")
    with ctrl_c_armed():
        replace_copy(folder / "source.txt", folder / "copy.txt")


def small_store(folder):
    from digits_tutorial.store import connect_store
    store_small_digits(folder)
    return connect_store(folder / "results" / "store.sql")


def record_a_run(folder, ctrl_c_armed):
    from digits_tutorial.runs import run_model
    store = small_store(folder)
    with ctrl_c_armed():
        run_model(store, "knn", {"k": 1})


def export_a_run(folder, ctrl_c_armed):
    from digits_tutorial.runs import export_run, run_model
    store = small_store(folder)
    run = run_model(store, "knn", {"k": 1})
    with ctrl_c_armed():
        export_run(store, run.id, to=folder / "run.zip")


def write_the_lab_app(folder, ctrl_c_armed):
    from digits_tutorial.widgets import lab_app_notebook
    with ctrl_c_armed():
        lab_app_notebook(folder)


WORK_IN_PROGRESS = (".copy.txt.", ".run.zip.", ".digits-lab.")  # names of temporary files, beside ".partial-" folders


@pytest.mark.parametrize("write, make", [(store_small_digits, "mkdtemp"), (unpack_small_archive, "mkdtemp"),
                                         (copy_a_file, "mkstemp"), (record_a_run, "mkdtemp"), (export_a_run, "mkstemp"),
                                         (write_the_lab_app, "mkstemp")],
                         ids=["build_store", "unpack_all_or_nothing", "replace_copy", "record_run", "export_run", "lab_app_notebook"])
def test_ctrl_c_the_moment_a_temporary_folder_is_made_leaves_nothing(write, make, tmp_path, monkeypatch):
    "The narrowest moment: Ctrl-C between the making of a folder (or file) for work in progress and the promise of its removal."
    import tempfile
    from contextlib import contextmanager

    @contextmanager
    def ctrl_c_armed():  # from here on, the next folder (or file) made is followed at once by Ctrl-C
        monkeypatch.setattr(tempfile, make, ctrl_c_after(getattr(tempfile, make)))
        yield

    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, ctrl_c_armed)
    left = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if ".partial-" in p.name or p.name.startswith(WORK_IN_PROGRESS)]
    assert left == []
