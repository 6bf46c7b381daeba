"""Running again into the same folder: no duplicates, no silent mixing of data, and two processes at once end with one consistent store."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from digits_tutorial.data import bundled_digits, bundled_path, read_lines
from digits_tutorial.split import split_digits
from digits_tutorial.store import build_store, connect_store, read_stored_digits, store_info

CLI = [sys.executable, "-c", "import sys; from digits_tutorial.cli import main; sys.exit(main())"]
N_BUNDLED = 1797
LEFTOVER_PATTERNS = (".images.partial-*", ".store.partial-*", ".images.old-*")


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, DIGITS_TUTORIAL_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")


def run_cli(args, env, cwd, timeout=120):
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def count_datasets(folder: Path) -> int:
    import kosh
    store = kosh.connect(str(folder / "store.sql"), read_only=True)
    try:
        return len(list(store.find(kind="digit", ids_only=True)))
    finally:
        store.close()


def count_images(folder: Path) -> int:
    return sum(1 for p in (folder / "images").iterdir() if p.suffix == ".png")


def leftovers(folder: Path):
    return sorted(p.name for pattern in LEFTOVER_PATTERNS for p in folder.glob(pattern))


def integrity(folder: Path) -> str:
    with sqlite3.connect(f"file:{folder / 'store.sql'}?mode=ro", uri=True) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def one_line(stderr):
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def digits_with_split(n=None, seed=0):
    digits = bundled_digits()
    if n is not None: digits = digits[:n]
    digits.split = split_digits(digits.y, seed=seed)
    return digits


# ---------------------------------------------------------------------------------------------------------------------
def test_command_line_twice_then_other_data(tmp_path, env, one_run):
    out = tmp_path / "results"
    shutil.copytree(one_run, out)  # the first run: `digits-tutorial run --out results --quiet`, made once per test process
    counts = (count_datasets(out), count_images(out))
    assert counts == (N_BUNDLED, N_BUNDLED)
    fingerprint = store_info(out / "store.sql")["fingerprint"]

    second = run_cli(["run", "--out", str(out), "--quiet"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert (count_datasets(out), count_images(out)) == counts  # no duplicates
    assert store_info(out / "store.sql")["fingerprint"] == fingerprint
    assert json.loads((out / "metrics.json").read_text())["data"]["n_samples"] == N_BUNDLED

    # Other data into the same folder: refused, with what the store holds, and the store is left as it was.
    small = tmp_path / "small.csv"
    small.write_text("\n".join(read_lines(bundled_path())[:60]) + "\n")
    other = run_cli(["run", "--out", str(out), "--data", str(small), "--quiet"], env, tmp_path)
    assert other.returncode == 1
    line = one_line(other.stderr)
    assert line.startswith("digits-tutorial: error: ") and str(out / "store.sql") in line
    assert "holds 1,797 digits" in line and "bundled" in line and fingerprint in line and "--replace" in line
    assert (count_datasets(out), count_images(out)) == counts
    assert store_info(out / "store.sql")["fingerprint"] == fingerprint

    # ... unless asked to replace it.
    replaced = run_cli(["run", "--out", str(out), "--data", str(small), "--replace", "--quiet"], env, tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    info = store_info(out / "store.sql")
    assert info["n_digits"] == 60 and info["fingerprint"] != fingerprint and "small.csv" in info["description"]
    assert (count_datasets(out), count_images(out)) == (60, 60)
    assert all(p.name.startswith("small.csv-line") for p in (out / "images").iterdir())
    assert json.loads((out / "metrics.json").read_text())["data"]["n_samples"] == 60


def test_build_store_twice_in_python_does_not_duplicate(tmp_path):
    digits = digits_with_split(300)
    folder = tmp_path / "store"
    path = build_store(digits, folder)
    assert build_store(digits, folder) == path
    assert (count_datasets(folder), count_images(folder)) == (300, 300)
    assert store_info(path)["n_digits"] == 300
    stored = read_stored_digits(connect_store(path, read_only=True))
    assert len(stored) == 300 and sorted(stored.index.tolist()) == list(range(300))
    assert leftovers(folder) == []


def test_build_store_leaves_no_partial_files_once_its_process_ends(tmp_path):
    folder = tmp_path / "store"
    script = textwrap.dedent(f"""
        from digits_tutorial.data import bundled_digits
        from digits_tutorial.split import split_digits
        from digits_tutorial.store import build_store
        digits = bundled_digits()[:100]
        digits.split = split_digits(digits.y, seed=0)
        build_store(digits, {str(folder)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (count_datasets(folder), count_images(folder)) == (100, 100)
    assert leftovers(folder) == []


# Two real processes into one folder, held at a barrier so that both run at the same time.
BARRIER = """
import sys, time, pathlib
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
{setup}
ready.touch()
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline: time.sleep(0.005)
{action}
"""
JOBS = {
    "build_store": ("from digits_tutorial.data import bundled_digits\n"
                    "from digits_tutorial.split import split_digits\n"
                    "from digits_tutorial.store import build_store\n"
                    "digits = bundled_digits()\n"
                    "digits.split = split_digits(digits.y, seed=0)",
                    "build_store(digits, sys.argv[3])"),
    "command-line": ("from digits_tutorial.cli import main",
                     "sys.exit(main(['run', '--out', sys.argv[3], '--quiet']))"),
}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_two_processes_at_once_end_with_one_consistent_store(tmp_path, env, job):
    setup, action = JOBS[job]
    script = BARRIER.format(setup=setup, action=action)
    out, go = tmp_path / "results", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"ready-{i}"), str(go), str(out)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "the processes did not reach the barrier"
            time.sleep(0.01)
        assert all(p.poll() is None for p in procs)  # both are running before either has done anything
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr
    assert integrity(out) == "ok"
    assert count_datasets(out) == N_BUNDLED
    assert count_images(out) == N_BUNDLED
    assert store_info(out / "store.sql")["n_digits"] == N_BUNDLED
    stored = read_stored_digits(connect_store(out / "store.sql", read_only=True))
    assert len(stored) == N_BUNDLED and len(set(stored.ids)) == N_BUNDLED
    if job == "command-line":  # both runs are recorded, completely: two run datasets, each with all its files
        import kosh
        latest = json.loads((out / "metrics.json").read_text())
        assert latest["data"]["n_samples"] == N_BUNDLED
        store = kosh.connect(str(out / "store.sql"), read_only=True)
        runs = list(store.find(kind="run"))
        assert len(runs) == 2 and latest["run"]["id"] in {ds.id for ds in runs}
        for ds in runs:
            files = {Path(uri).name for uri in ds.get_record()["files"]}
            assert files == {"Train_Data_confusion_matrix.png", "Validation_Data_confusion_matrix.png",
                             "Test_Data_confusion_matrix.png", "metrics.json", "split.csv", "model.skops"}
            assert all(Path(uri).is_file() for uri in ds.get_record()["files"])
            assert ds.accuracy_test == json.loads((out / "runs" / ds.id / "metrics.json").read_text())["accuracy"]["test"]
        assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(ds.id for ds in runs)  # no partial folder
    assert leftovers(out) == []
