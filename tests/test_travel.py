"""Results that travel: a folder moved, copied, archived and unpacked elsewhere reads only its own files; runs are exported,
imported and made again from their record; sweeps resume; the edges of the command line get one clear line each.
Each scenario is done the way it happens: `mv`, `cp -r`, `rm -rf`, zip and tar, Ctrl-C, with the real command."""
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import kosh
import pytest

from digits_tutorial.store import STORE_NAME


def run_ids(cli, out) -> list[str]:
    done = cli("runs", "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    return [r["id"] for r in json.loads(done.stdout)]


def files_of(store_file) -> list[str]:
    """Every file the store names: each file record's path and each dataset's entries for its files, read in bulk through
    the public API of Kosh's records (Sina's `records.get`); `ds.find()` dataset by dataset reads the same, 100 times slower."""
    store = kosh.connect(str(store_file), read_only=True)
    try:
        records = store.get_sina_records()
        found = list(records.get(list(records.get_all(ids_only=True))))
    finally:
        store.close()
    return [r.data["uri"]["value"] for r in found if r.type == "file"] + [u for r in found if r.type == "dataset" for u in r.files]


def inside(folder, uris) -> list[str]:
    "The uris that are not files inside `folder`."
    folder = Path(folder).resolve()
    return [u for u in uris if not (Path(u).is_file() and folder in Path(u).resolve().parents)]


@pytest.fixture(scope="module")
def carried(tmp_path_factory, cli, one_run):
    "The issue's scenario: two runs into A; mv A B; a third run in B; cp -r B C; rm -rf B (A's first run: a copy of one)."
    top = tmp_path_factory.mktemp("travel")
    shutil.copytree(one_run, top / "A")
    done = cli("run", "--out", top / "A", "--model", "knn", "--quiet")
    assert done.returncode == 0, done.stderr
    (top / "A").rename(top / "B")
    svc = cli("run", "--model", "svc", "--out", top / "B", "--quiet")
    listed = cli("runs", "--out", top / "B")
    shutil.copytree(top / "B", top / "C")
    shutil.rmtree(top / "B")
    return top, svc, listed


def test_a_moved_folder_takes_another_run_and_lists_three(carried):
    top, svc, listed = carried
    assert svc.returncode == 0, svc.stderr
    assert listed.returncode == 0 and listed.stdout.splitlines()[0] == f"3 runs in {top / 'B' / STORE_NAME}"


def test_in_the_copy_every_run_loads_its_model_and_is_made_again(carried, cli):
    top, _, _ = carried
    ids = run_ids(cli, top / "C")
    assert len(ids) == 3
    for run_id in ids:
        done = cli("rerun", run_id, "--out", top / "C")
        assert done.returncode == 0 and "all 1,797 predictions are the same" in done.stdout, done.stdout + done.stderr
    from digits_tutorial.runs import load_run
    from digits_tutorial.store import connect_store
    store = connect_store(top / "C" / STORE_NAME)
    run = load_run(store, ids[-1], with_model=True)
    assert run.estimator is not None and Path(run.folder).parent.parent == (top / "C").resolve()


def test_plain_kosh_finds_only_files_inside_the_copy(carried, cli):
    top, _, _ = carried
    run_ids(cli, top / "C")  # any command of the project opens the store where it now is, and re-points it
    uris = files_of(top / "C" / STORE_NAME)
    assert len(uris) == 2 * (1797 + 3 * 6) and inside(top / "C", uris) == []
    store = kosh.connect(str(top / "C" / STORE_NAME), read_only=True)
    assert store.check_integrity() == []  # Kosh's own check: every file it records is where it says
    runs = list(store.find(kind="run"))
    some = runs + list(store.find(kind="digit"))[::200]  # and as a user of plain Kosh finds them, dataset by dataset
    assert len(runs) == 3 and inside(top / "C", [f.uri for ds in some for f in ds.find()]) == []


def test_runs_json_says_where_each_run_and_model_is(carried, cli):
    top, _, _ = carried
    listed = json.loads(cli("runs", "--out", top / "C", "--json").stdout)
    for r in listed:
        assert Path(r["folder"]) == (top / "C" / "runs" / r["id"]).resolve()
        assert Path(r["model_file"]) == Path(r["folder"]) / "model.skops" and Path(r["model_file"]).is_file()


def test_a_copy_reads_its_own_files_while_the_original_is_still_there(carried, cli):
    "The worst case of the issue: the original is kept, so reading its files would go unnoticed."
    top, _, _ = carried
    run_ids(cli, top / "C")
    shutil.copytree(top / "C", top / "copy")
    done = cli("run", "--out", top / "copy", "--model", "knn", "--param", "k=3", "--quiet")
    assert done.returncode == 0, done.stderr
    assert inside(top / "copy", files_of(top / "copy" / STORE_NAME)) == []
    assert inside(top / "C", files_of(top / "C" / STORE_NAME)) == []  # and the original still reads its own


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_an_archive_unpacked_under_another_path_reads_only_its_own_files(carried, cli, kind):
    top, _, _ = carried
    archive = shutil.make_archive(str(top / f"folder-{kind}"), "zip" if kind == "zip" else "gztar", root_dir=top, base_dir="C")
    unpacked = top / f"unpacked-{kind}" / "deeper"
    shutil.unpack_archive(archive, unpacked)
    assert len(run_ids(cli, unpacked / "C")) == 3  # opening the store re-points it
    assert inside(unpacked / "C", files_of(unpacked / "C" / STORE_NAME)) == []


def test_repointing_writes_what_kosh_reassociate_writes(tmp_path):
    "The one use of Sina's tables for re-pointing, against Kosh's public `reassociate` on the same store."
    from digits_tutorial.data import load_digits
    from digits_tutorial.plumbing import repoint_records
    from digits_tutorial.runs import run_model
    from digits_tutorial.split import split_digits
    from digits_tutorial.store import build_store, connect_store
    digits = load_digits("bundled")[:60]
    digits.split = split_digits(digits.y, (0.5, 0.25, 0.25), seed=0, stratify=False)
    store = connect_store(build_store(digits, tmp_path / "made"))
    run_model(store, "knn", {"k": 1})
    old, new = str((tmp_path / "made").resolve()), str((tmp_path / "elsewhere").resolve())
    for name in ("sql", "kosh"):
        shutil.copyfile(tmp_path / "made" / STORE_NAME, tmp_path / f"{name}.sql")
    repoint_records(tmp_path / "sql.sql", old, new)
    public = kosh.connect(str(tmp_path / "kosh.sql"))
    for uri in [public.get_record(i)["data"]["uri"]["value"] for i in public.find(types="file", ids_only=True)]:
        public.reassociate(new + uri[len(old):], source=uri, absolute_path=False)

    def seen(path):
        store = kosh.connect(str(path), read_only=True)
        datasets = {ds.id: (sorted(ds.get_record()["files"]), sorted(f.uri for f in ds.find())) for ds in store.find()}
        records = [store.get_record(i)["data"] for i in store.find(types="file", ids_only=True)]
        files = sorted((r["uri"]["value"], r["mime_type"]["value"], r["fast_sha"]["value"]) for r in records)
        return datasets, files
    by_sql, by_kosh = seen(tmp_path / "sql.sql"), seen(tmp_path / "kosh.sql")
    assert by_sql == by_kosh and len(by_sql[1]) == 60 + 6
    assert all(uri.startswith(new + "/") for uri, _, _ in by_sql[1])


def document_uris(path) -> list[str]:
    "The paths in Sina's Document table (where Sina keeps each file record's uri for queries), read with SQL."
    import sqlite3
    with sqlite3.connect(path) as db: return [uri for (uri,) in db.execute("SELECT uri FROM Document")]


def test_repointing_is_all_or_nothing(tmp_path):
    "A transaction refused at its last table leaves every path as it was: the records and Sina's Document table alike."
    from digits_tutorial.data import load_digits
    from digits_tutorial.plumbing import repoint_records
    from digits_tutorial.split import split_digits
    from digits_tutorial.store import build_store
    digits = load_digits("bundled")[:300]  # the speed of re-pointing every digit is the benchmark's figure, not a test's
    digits.split = split_digits(digits.y, (0.6, 0.2, 0.2), seed=0)
    path = build_store(digits, tmp_path / "big")
    import sqlite3
    with sqlite3.connect(path) as db:  # the last table the transaction updates refuses: all of it must be undone
        db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON Document BEGIN SELECT RAISE(ABORT, 'refused'); END")
    before = files_of(path), document_uris(path)
    assert len(before[0]) == 2 * 300 and len(before[1]) == 300 and inside(tmp_path / "big", before[0] + before[1]) == []
    with pytest.raises(sqlite3.IntegrityError):
        repoint_records(path, str((tmp_path / "big").resolve()), "/elsewhere/big")
    assert (files_of(path), document_uris(path)) == before
    with sqlite3.connect(path) as db: db.execute("DROP TRIGGER refuse")
    changed = repoint_records(path, str((tmp_path / "big").resolve()), "/elsewhere/big")
    assert changed == 2 * 300 + 1  # the datasets, their files, and the ensemble that says where the folder is
    after = files_of(path) + document_uris(path)
    assert len(after) == 3 * 300 and all(uri.startswith("/elsewhere/big/images/") for uri in after)


def test_images_deleted_by_hand_get_one_line_and_nothing_is_written(tmp_path, cli, one_run):
    out = shutil.copytree(one_run, tmp_path / "results")
    for png in sorted((out / "images").glob("*.png"))[:5]: png.unlink()
    before = sorted(p.name for p in out.rglob("*")), run_ids(cli, out)
    done = cli("run", "--out", out, "--model", "knn", "--quiet")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "5 of the 1,797 digit images" in done.stderr and "--replace" in done.stderr
    assert (sorted(p.name for p in out.rglob("*")), run_ids(cli, out)) == before
    assert cli("run", "--out", out, "--quiet", "--replace").returncode == 0  # and what it says to do works
    assert len(list((out / "images").glob("*.png"))) == 1797


@pytest.fixture(scope="module")
def exported(carried, cli):
    "The svc run of C exported, and a fresh folder D made from the same digits (with another split), and E, a copy of D."
    top, _, _ = carried
    run_id = run_ids(cli, top / "C")[-1]
    done = cli("export", run_id, "--out", top / "C", "--to", top / "svc.zip")
    assert done.returncode == 0, done.stderr
    assert cli("run", "--out", top / "D", "--seed", "4", "--quiet").returncode == 0
    shutil.copytree(top / "D", top / "E")  # E never receives the run: refused archives are tried on it, in any order
    return top, run_id


def test_an_imported_run_has_the_same_accuracies_and_its_model_predicts_the_same(exported, cli):
    from digits_tutorial.runs import load_run
    from digits_tutorial.store import connect_store, read_stored_digits
    top, run_id = exported
    done = cli("import", top / "svc.zip", "--out", top / "D")
    assert done.returncode == 0 and f"run {run_id} imported into" in done.stdout, done.stderr
    there = {r["id"]: r for r in json.loads(cli("runs", "--out", top / "D", "--json").stdout)}
    here = {r["id"]: r for r in json.loads(cli("runs", "--out", top / "C", "--json").stdout)}
    assert there[run_id]["accuracy"] == here[run_id]["accuracy"] and there[run_id]["imported_from"]
    c, d = connect_store(top / "C" / STORE_NAME), connect_store(top / "D" / STORE_NAME)
    original, imported = load_run(c, run_id, with_model=True), load_run(d, run_id, with_model=True)
    test = read_stored_digits(d, "test")  # D's own test digits (another split): both models say the same of them
    X = test.X.astype(float)
    assert (imported.estimator.predict(X) == original.estimator.predict(X)).all()
    again = cli("import", top / "svc.zip", "--out", top / "D")
    assert again.returncode == 0 and "already" in again.stdout and len(run_ids(cli, top / "D")) == 2
    assert cli("rerun", run_id, "--out", top / "D").returncode == 0


def rewritten(archive, target, change):
    "A copy of zip `archive` at `target`, each member's bytes passed through `change(name, data)`."
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist(): dst.writestr(item.filename, change(item.filename, src.read(item)))
    return target


def without_last_digits(archive, target, n=10):
    "A copy of `archive` whose split leaves out its last `n` digits, the manifest's SHA-256 made to agree: only the digits check is left."
    with zipfile.ZipFile(archive) as src: members = {item.filename: src.read(item) for item in src.infolist()}
    rows = members["files/split.csv"].rstrip(b"\n").split(b"\n")
    members["files/split.csv"] = b"\n".join(rows[:-n]) + b"\n"
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["split.csv"] = hashlib.sha256(members["files/split.csv"]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w") as dst:
        for name, data in members.items(): dst.writestr(name, data)
    return target


@pytest.mark.parametrize("fault", ["model byte", "metrics changed", "split changed", "fewer digits", "bit flip", "escaping name",
                                   "foreign record", "not a zip"])
def test_a_tampered_or_unsafe_archive_is_refused_with_one_line(exported, cli, fault, tmp_path):
    "Each is refused, and nothing of it is imported: a check that is missing fails here whatever another check would say."
    top, run_id = exported
    archive = top / "svc.zip"
    if fault == "model byte":
        bad = rewritten(archive, tmp_path / "bad.zip", lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n == "files/model.skops" else d)
        said = "model.skops was changed after the run was exported"
    elif fault == "metrics changed":  # still valid JSON, the manifest as exported
        bad = rewritten(archive, tmp_path / "bad.zip", lambda n, d: d + b" " if n == "files/metrics.json" else d)
        said = "metrics.json was changed after the run was exported"
    elif fault == "split changed":  # one prediction, still a valid split
        def change(name, data):
            if name != "files/split.csv": return data
            header, first, *rest = data.decode().split("\n")
            cells = first.split(",")
            cells[-1] = str((int(cells[-1]) + 1) % 10)
            return "\n".join([header, ",".join(cells), *rest]).encode()
        bad = rewritten(archive, tmp_path / "bad.zip", change)
        said = "split.csv was changed after the run was exported"
    elif fault == "fewer digits":
        bad = without_last_digits(archive, tmp_path / "bad.zip")
        said = "the run's split names 1,787 of the store's 1,797 digits"
    elif fault == "bit flip":
        raw = bytearray(archive.read_bytes()); raw[len(raw) // 3] ^= 0xFF
        bad = tmp_path / "bad.zip"; bad.write_bytes(bytes(raw))
        said = "damaged"
    elif fault == "escaping name":
        bad = tmp_path / "bad.zip"; shutil.copyfile(archive, bad)
        with zipfile.ZipFile(bad, "a") as zf: zf.writestr("../../escaped.txt", "outside")
        said = "would be written outside"
    elif fault == "foreign record":  # a record that would add a "digit" to the store, its hashes made to agree
        def change(name, data):
            if name != "run.json": return data
            record = json.loads(data); record["records"][0]["data"]["kind"] = {"value": "digit"}
            return json.dumps(record).encode()
        bad = rewritten(archive, tmp_path / "bad.zip", change)
        said = "is not that of run"
    else:
        bad = tmp_path / "bad.zip"; bad.write_text("0," * 64 + "3\n")
        said = "not a run archive"
    before = run_ids(cli, top / "E"), sorted(p.name for p in (top / "E" / "runs").iterdir())
    assert run_id not in before[0]
    done = cli("import", bad, "--out", top / "E")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and said in done.stderr, done.stderr
    assert (run_ids(cli, top / "E"), sorted(p.name for p in (top / "E" / "runs").iterdir())) == before
    assert not (top / "escaped.txt").exists() and not (top.parent / "escaped.txt").exists()


def test_an_archive_of_other_digits_is_refused(exported, cli, tmp_path):
    top, run_id = exported
    first = tmp_path / "first.tes"
    from digits_tutorial.data import bundled_path
    import gzip
    first.write_text("\n".join(gzip.decompress(bundled_path().read_bytes()).decode().splitlines()[:1000]) + "\n")
    assert cli("run", "--out", tmp_path / "other", "--data", first, "--quiet").returncode == 0
    done = cli("import", top / "svc.zip", "--out", tmp_path / "other")
    assert done.returncode == 1 and "made on other digits" in done.stderr and done.stderr.count("\n") == 1
    assert len(run_ids(cli, tmp_path / "other")) == 1


def test_a_rerun_that_differs_exits_1_and_names_the_digits(tmp_path, cli, one_run):
    out = shutil.copytree(one_run, tmp_path / "results")
    [run_id] = run_ids(cli, out)
    split = out / "runs" / run_id / "split.csv"
    rows = list(csv.DictReader(io.StringIO(split.read_text())))
    for row in rows[:3]: row["predicted"] = str((int(row["predicted"]) + 1) % 10)  # as if the fit had said otherwise
    with open(split, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0])); writer.writeheader(); writer.writerows(rows)
    done = cli("rerun", run_id, "--out", out)
    assert done.returncode == 1 and "3 of 1,797 predictions differ" in done.stdout
    for row in rows[:3]: assert f"{row['source']} line {row['line']}" in done.stdout


def test_the_same_sweep_twice_records_each_candidate_once_and_shows_the_chosen_one(tmp_path, cli):
    out = tmp_path / "results"
    sweep = ("sweep", "--out", out, "--model", "knn", "--grid", "k=1,3,9", "--cv", "3", "--quiet")
    first, second = cli(*sweep), cli(*sweep)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.splitlines()[:5] == second.stdout.splitlines()[:5]  # the table; the last line says it was done
    listed = json.loads(cli("runs", "--out", out, "--json").stdout)
    assert sorted(r["params"]["k"] for r in listed) == [1, 3, 9] and len({r["sweep"] for r in listed}) == 1
    best = max(listed, key=lambda r: r["cv"]["mean"])
    top = json.loads((out / "metrics.json").read_text())
    assert top["run"]["id"] == best["id"] and top["cv"]["mean"] == best["cv"]["mean"]
    from PIL import Image
    with Image.open(out / "Validation_Data_confusion_matrix.png") as png:
        assert f"k-nearest neighbours (k={best['params']['k']}), run {best['id']}" in png.text["Title"]
    store = kosh.connect(str(out / STORE_NAME), read_only=True)
    [swept] = store.find(kind="sweep")
    assert swept.finished and swept.chosen == best["id"]


def test_an_interrupted_sweep_says_so_and_resumes_where_it_stopped(tmp_path):
    "Ctrl-C (SIGINT) as soon as the first candidate is recorded; the same sweep again fits only the others."
    out = tmp_path / "results"
    script = Path(sys.executable).with_name("digits-tutorial")
    sweep = [str(script), "sweep", "--out", str(out), "--model", "svc", "--grid", "C=1,5,25", "--grid", "gamma=0.001",
             "--cv", "3", "--quiet"]
    proc = subprocess.Popen(sweep, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "runs").is_dir() and any(not p.name.startswith(".") for p in (out / "runs").iterdir()): break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == "digits-tutorial: interrupted\n", err
    store = kosh.connect(str(out / STORE_NAME), read_only=True)
    [swept] = store.find(kind="sweep")
    recorded = {ds.id for ds in store.find(kind="run")}
    assert not swept.finished and 1 <= len(recorded) < 3
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]  # nothing half-written
    done = subprocess.run(sweep, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    store = kosh.connect(str(out / STORE_NAME), read_only=True)
    after = {ds.id for ds in store.find(kind="run")}
    assert recorded < after and len(after) == 3 and next(store.find(kind="sweep")).finished


@pytest.mark.parametrize("case", ["out is a file", "out under a file", "fractions", "no test split"])
def test_the_edges_get_one_clear_line(tmp_path, cli, case):
    if case == "out is a file":
        (tmp_path / "a-file").write_text("not a folder\n")
        done = cli("run", "--out", tmp_path / "a-file", "--quiet")
        said = "a file, not a folder"
    elif case == "out under a file":
        (tmp_path / "a-file").write_text("not a folder\n")
        done = cli("run", "--out", tmp_path / "a-file" / "results", "--quiet")
        said = "cannot be made, since"
    elif case == "fractions":  # reported before any data is read: the data named here does not even exist
        done = cli("run", "--out", tmp_path / "r", "--train", "0.6", "--validation", "0.3", "--data", tmp_path / "none.tra")
        said = "the fractions add up to 1.1"
        assert not (tmp_path / "r").exists() and "reading the data" not in done.stderr
    else:
        done = cli("run", "--out", tmp_path / "r", "--train", "0.8", "--validation", "0.2", "--test", "0", "--quiet")
        assert done.returncode == 0 and "nan" not in done.stdout and "test" not in done.stdout.split("accuracy")[1].split(";")[0]
        metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
        assert metrics["accuracy"]["test"] is None and not (tmp_path / "r" / "Test_Data_confusion_matrix.png").exists()
        assert len((tmp_path / "r" / "metrics.json").read_text().splitlines()) < 100  # a matrix row per line
        return
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and said in done.stderr, done.stderr
    assert "Errno" not in done.stderr and "Traceback" not in done.stderr


def loaded(pid, library) -> bool:
    "True once process `pid` has loaded a shared library whose path holds `library` (Linux: /proc/PID/maps)."
    try: return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError: return False


MOMENTS = {  # a moment of a first run, and how a test sees that the run is at it
    "importing": lambda out, pid: loaded(pid, "numpy"),  # a run imports numpy, then scikit-learn, before it touches its folder
    "writing the digits": lambda out, pid: any(out.glob(".images.partial-*")),
    "writing the run's files": lambda out, pid: (out / "runs").is_dir() and any((out / "runs").glob(".*.partial-*")),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_during_imports_or_work_is_one_line(tmp_path, moment):
    "Ctrl-C (SIGINT) at a moment the test sees the run reach, never at a guessed time: one line, exit 130, nothing half-written."
    out = tmp_path / "results"
    script = Path(sys.executable).with_name("digits-tutorial")
    proc = subprocess.Popen([str(script), "run", "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    reached, deadline = MOMENTS[moment], time.monotonic() + 300
    while proc.poll() is None and not reached(out, proc.pid) and time.monotonic() < deadline: time.sleep(0.002)
    running = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert running, f"the run ended ({proc.returncode}) before the test saw it {moment}: {err}"
    assert proc.returncode == 130 and err == "digits-tutorial: interrupted\n", err
    assert not out.exists() or not [p for p in out.rglob("*") if "partial" in p.name]  # nothing half-written
    if (out / "runs").is_dir():  # a run is recorded whole, or not at all
        for folder in (out / "runs").iterdir(): assert {p.name for p in folder.iterdir()} >= {"metrics.json", "model.skops"}


def test_the_readme_travel_commands_work_as_written(tmp_path):
    "The README's 'Results that travel' block, line by line in a shell, RUN_ID replaced by the id `runs` printed first."
    from test_readme_install import code_blocks
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    [block] = code_blocks(readme.split("\n## Results that travel\n", 1)[1].split("\n## ", 1)[0])
    env = dict(os.environ, MPLBACKEND="Agg", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("DIGITS_TUTORIAL_STORE", None)
    run_id, said = None, {}
    for line in block:
        command = line.split("#", 1)[0].strip()
        if "RUN_ID" in command: command = command.replace("RUN_ID", run_id)
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (line, done.stderr)
        said[command.split()[1] if command.startswith("digits-tutorial") else command.split()[0]] = done.stdout
        if command.startswith("digits-tutorial runs"): run_id = done.stdout.splitlines()[2].split()[0]
    assert not (tmp_path / "results").exists() and "all 1,797 predictions are the same" in said["rerun"]
    moved, theirs = (json.loads(subprocess.run(["digits-tutorial", "runs", "--out", folder, "--json"], cwd=tmp_path, env=env,
                                               capture_output=True, text=True, check=True).stdout) for folder in ("moved", "theirs"))
    assert [r["id"] for r in moved] == [run_id] and run_id in [r["id"] for r in theirs] and len(theirs) == 2
    assert not inside(tmp_path / "moved", files_of(tmp_path / "moved" / STORE_NAME))  # every file of the moved store is its own
