"""Put faults into a copy of the library, one at a time, and see the tests that claim to catch each one turn red.

    python tools/faults.py [--only N ...] [--jobs N] [--list]

Each row of `FAULTS` is a mistake a developer could make: an exact one- or two-line replacement in `digits_tutorial/*.py`
(found in whichever module holds the text, exactly once), and the tests that should catch it. For each row the script
takes a fresh copy of the project (the files git knows, as a clone has them), runs those tests there once without the
fault (they must pass: green) and once with it (they must fail: red), and prints the table. Exit status 1 unless every
row is green without its fault and red with it. Rows 1 to 15 are the faults of issue 25, which no test caught before it;
rows 16 to 38 were caught already and stay caught; rows 39 to 41 show red once the checks issue 25 rewrote; rows 42
to 45 are faults CI found afterwards (leftovers of a Ctrl-C or a kill, and a server's error passed as a traceback);
rows 46 to 48 are issue 27's sweep (what a candidate keeps, its folds, the folds in the calling thread); row 49 its
command's garbage collector.

The copy is imported in place of the installed package (`PYTHONPATH`, ahead of the editable install), by pytest and by
every `digits-tutorial` process a test starts. Not run by CI (a few minutes): run it after changing a test it names, or
a function a fault is put into.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Fault:
    what: str         # the mistake, in words
    old: str          # the exact text of the library it replaces (one or two lines)
    new: str          # what it becomes
    tests: list[str]  # the tests that catch it (pytest node ids)


T = "tests/"
FAULTS = [
    # --- the fifteen faults of issue 25 -------------------------------------------------------------------------------
    Fault("class_board: a later run with the same validation accuracy replaces the earlier one",
          "(learner not in best or score[0] > best[learner][0][0])", "(learner not in best or score[0] >= best[learner][0][0])",
          [T + "test_class.py::test_of_two_runs_with_the_same_score_the_board_keeps_the_earlier"]),
    Fault("the class store's 'holds other digits' message built from the raw URL",
          'raise StoreMismatch(f"{masked_url(url)}: the class store holds', 'raise StoreMismatch(f"{url}: the class store holds',
          [T + "test_class.py::test_a_class_store_of_other_digits_is_refused_without_its_password"]),
    Fault("the wrong-driver message built from the raw URL",
          'raise ValueError(f"{masked_url(url)}: a class store is a MariaDB', 'raise ValueError(f"{url}: a class store is a MariaDB',
          [T + "test_class.py::test_an_address_that_is_no_class_store_is_refused_with_its_password_masked"]),
    Fault("import checks the SHA-256 of model.skops only",
          "        if hashlib.sha256(data).hexdigest() != manifest[\"files\"][name]:",
          "        if name == MODEL_NAME and hashlib.sha256(data).hexdigest() != manifest[\"files\"][name]:",
          [T + "test_travel.py::test_a_tampered_or_unsafe_archive_is_refused_with_one_line[metrics changed]",
           T + "test_travel.py::test_a_tampered_or_unsafe_archive_is_refused_with_one_line[split changed]"]),
    Fault("import no longer checks that the split names every digit",
          "    if len(set(ids)) != len(digits):", "    if False:",
          [T + "test_travel.py::test_a_tampered_or_unsafe_archive_is_refused_with_one_line[fewer digits]"]),
    Fault("rerun uses seed 0, not the recorded seed",
          "again = run_model(store, recorded.model, recorded.params, recorded.seed,",
          "again = run_model(store, recorded.model, recorded.params, 0,",
          [T + "test_runs.py::test_a_run_with_a_seed_is_made_again_with_that_seed"]),
    Fault("a learner's name of 65 characters accepted (the bound off by one)",
          'r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"', 'r"[A-Za-z0-9][A-Za-z0-9._@-]{0,64}"',
          [T + "test_class.py::test_a_learners_name_has_at_most_64_characters"]),
    Fault("record_run ignores latest=False",
          "            if latest: show_at_top(store, run)", "            show_at_top(store, run)",
          [T + "test_runs.py::test_a_run_recorded_not_as_the_latest_leaves_the_top_of_the_folder_alone"]),
    Fault("a resumed sweep cross-validates its finished candidates again",
          "            done = _recorded_candidates(store, sid).get(key) if record else None\n            if done is None:\n"
          "                with phase(",
          "            done = None\n            if done is None:\n                with phase(",
          [T + "test_sweep.py::test_a_resumed_sweep_cross_validates_only_the_candidates_it_had_not_finished"]),
    Fault("check_knn_command compares only the last part of --out",
          'elif Path(args.out) != Path("lesson-output/cli/exercise"):', 'elif Path(args.out).name != "exercise":',
          [T + "test_exercises.py::test_a_knn_command_into_another_folder_is_refused"]),
    Fault("the drawing's ink threshold dropped: any alpha above 0 is ink",
          "if alpha.min() != alpha.max(): return alpha >= 128", "if alpha.min() != alpha.max(): return alpha > 0",
          [T + "test_draw.py::test_faint_marks_are_not_ink"]),
    Fault("the nearest training digits taken from the store's split, not from the run's",
          'else: mask = np.isin(self.digits.ids, self.run.ids[self.run.split == "train"])',
          'else: mask = self.digits.split == "train"',
          [T + "test_draw.py::test_nearest_digits_come_from_the_split_of_the_run_not_of_the_store"]),
    Fault("the lab's run labels name the learner only on a server store",
          'learners = on_server(self._store) or len({r["learner"] for r in rows if r["learner"]}) > 1',
          "learners = on_server(self._store)",
          [T + "test_lab.py::test_the_runs_of_two_learners_in_a_folder_say_whose_they_are"]),
    Fault("the folder lock not taken while a run is recorded",
          'with phase("record"), folder_lock(top), uninterrupted():', 'with phase("record"), uninterrupted():',
          [T + "test_runs.py::test_a_run_is_recorded_under_its_folders_lock"]),
    Fault("the server lock's key leaves out the thread",
          "key = (str(url), name, threading.get_ident())", "key = (str(url), name)",
          [T + "test_class.py::test_two_threads_of_one_process_take_turns_on_the_server_lock"]),
    # --- faults the tests caught before issue 25, chosen for this table (the author did not list theirs) ---------
    Fault("a pixel count of 17 accepted (the bound off by one)",
          "        if not 0 <= value <= MAX_COUNT:", "        if not 0 <= value <= MAX_COUNT + 1:",
          [T + "test_bad_input.py::test_csv_reader_names_file_line_and_expectation"]),
    Fault("lines of a bad file counted from 0",
          "for number, line in enumerate(lines, 1)], dtype=np.int64)", "for number, line in enumerate(lines)], dtype=np.int64)",
          [T + "test_bad_input.py::test_csv_reader_names_file_line_and_expectation"]),
    Fault("a bitmap's 4x4 block counts laid out column by column",
          ".sum(axis=(2, 4), dtype=np.int64).reshape(n, N_PIXELS)", ".sum(axis=(2, 4), dtype=np.int64).transpose(0, 2, 1).reshape(n, N_PIXELS)",
          [T + "test_cli.py::test_default_model_scored_on_a_bitmap_file_of_other_digits"]),
    Fault("a downloaded archive checked for its number of rows only, not its class counts",
          "    if len(y) != rows or found != classes:", "    if len(y) != rows:",
          [T + "test_download.py::test_bad_archive_fails_cleanly_and_is_fetched_again[wrong-classes]"]),
    Fault("splits not stratified",
          "    labels = y[indices] if stratify else None", "    labels = None",
          [T + "test_runs.py::test_two_command_line_runs_keep_the_digits_and_add_two_runs"]),
    Fault("a folder's store of other digits kept, not refused",
          '    if info and info["fingerprint"] != digits.fingerprint:', "    if False:",
          [T + "test_reruns.py::test_command_line_twice_then_other_data"]),
    Fault("a moved or copied store not re-pointed when it is opened",
          "    if Path(path).is_file(): relocate_store(path)  #", "    if False: relocate_store(path)  #",
          [T + "test_travel.py::test_a_copy_reads_its_own_files_while_the_original_is_still_there"]),
    Fault("digit images deleted by hand not noticed",
          "    missing = [u for u in uris if not os.path.exists(u)]", "    missing = []",
          [T + "test_travel.py::test_images_deleted_by_hand_get_one_line_and_nothing_is_written"]),
    Fault("a model file loaded without its SHA-256 checked",
          "    if sha256 is not None and _sha256(path) != sha256:", "    if False:",
          [T + "test_runs.py::test_a_changed_model_file_is_refused"]),
    Fault("a model file's types not checked before loading",
          "untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_MODEL_TYPES]", "untrusted = []",
          [T + "test_runs.py::test_a_foreign_model_file_is_refused_even_with_its_hash_recorded"]),
    Fault("a run's dataset kept when associating its files fails",
          "                store.delete(dataset)", "                pass",
          [T + "test_runs.py::test_a_failed_association_removes_the_dataset"]),
    Fault("a refit that does not fit on the validation digits",
          'split = np.where(split == "validation", "train", split)  # the model', "pass  # the model",
          [T + "test_improve.py::test_refit_fits_on_train_and_validation_and_scores_test_once"]),
    Fault("a rerun that compares predictions the wrong way round",
          "return np.flatnonzero(self.recorded.predicted != self.again.predicted)",
          "return np.flatnonzero(self.recorded.predicted == self.again.predicted)",
          [T + "test_travel.py::test_a_rerun_that_differs_exits_1_and_names_the_digits"]),
    Fault("confusion matrices transposed (rows the predictions)",
          "confusion_matrix(y_true, y_pred, labels=CLASSES)", "confusion_matrix(y_pred, y_true, labels=CLASSES)",
          [T + "test_cli.py::test_counts_matrices_and_store_agree"]),
    Fault("a fit that does not converge recorded as a run",
          'warnings.simplefilter("error", ConvergenceWarning)', 'warnings.simplefilter("ignore", ConvergenceWarning)',
          [T + "test_runs.py::test_a_run_that_does_not_converge_stops_and_records_nothing"]),
    Fault("one-pixel shifts that move nothing up or down",
          "images[:, max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)]",
          "images[:, max(dy, 0):8 + min(dy, 0), max(-dx, 0):8 + min(-dx, 0)]",
          [T + "test_improve.py::test_each_pixel_moves_to_each_neighbour_and_zeros_come_in"]),
    Fault("cross-validation folds not shuffled",
          "StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=seed)", "StratifiedKFold(n_splits=int(cv), shuffle=False)",
          [T + "test_sweep.py::test_cross_validation_shifts_the_train_folds_only"]),
    Fault("class store connections left at MariaDB's REPEATABLE READ",
          'READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"',
          'READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"',
          [T + "test_class.py::test_four_learners_at_once"]),
    Fault("the class board ranks by test accuracy",
          '(("accuracy_validation", "validation"), ("cv_mean"', '(("accuracy_test", "validation"), ("cv_mean"',
          [T + "test_class.py::test_the_board_ranks_by_validation_never_by_test"]),
    Fault("archive members with '..' in their path accepted",
          're.match(r"^[A-Za-z]:", name) or ".." in parts:', 're.match(r"^[A-Za-z]:", name):',
          [T + "test_travel.py::test_a_tampered_or_unsafe_archive_is_refused_with_one_line[escaping name]"]),
    Fault("a drawing's bitmap not centred",
          "top, left = (BITMAP_SIZE - size[1]) // 2, (BITMAP_SIZE - size[0]) // 2", "top, left = 0, 0",
          [T + "test_draw.py::test_a_drawing_is_size_normalised"]),
    Fault("the lab's other two fractions shared half and half, not in their proportion",
          "share = a / (a + b) if a + b > 0 else 0.5", "share = 0.5",
          [T + "test_lab.py::test_fractions_always_add_up_and_move_predictably"]),
    Fault("the benchmark's ratios upside down (baseline over figure)",
          "figures[key] / figures[base] if base else figures[key]", "figures[base] / figures[key] if base else figures[key]",
          [T + "test_bench.py::test_a_figure_past_its_bound_misses_that_target_only"]),
    # --- checks issue 25 rewrote (no longer timed, or no longer returning early): each shown red once too -------------
    Fault("a store's images left half-written when Ctrl-C stops their writing",
          "            if made.is_dir(): shutil.rmtree(made, ignore_errors=True)",
          "            if made.is_dir(): pass",
          [T + "test_travel.py::test_ctrl_c_during_imports_or_work_is_one_line[writing the digits]"]),
    Fault("re-pointing commits the records before Sina's tables",
          '            db.executemany("UPDATE Record SET raw = ? WHERE id = ?", changed)\n',
          '            db.executemany("UPDATE Record SET raw = ? WHERE id = ?", changed)\n            db.commit()\n',
          [T + "test_travel.py::test_repointing_is_all_or_nothing"]),
    Fault("re-pointing leaves Sina's Document table as it was",
          '("ListStringDataEntry", "value"), ("Document", "uri")):', '("ListStringDataEntry", "value")):',
          [T + "test_travel.py::test_repointing_is_all_or_nothing"]),
    # --- found by CI after issue 25: SQLite's journal of a store killed in a transaction ------------------------------
    Fault("the next run leaves the journal of a killed run's store (.store.partial-*.sql-journal)",
          'LEFTOVERS = (".store.partial-*.sql*",', 'LEFTOVERS = (".store.partial-*.sql",',
          [T + "test_interrupts.py::test_what_a_killed_run_left_the_next_run_removes[in a transaction of the store]"]),
    Fault("a temporary folder or file made with Ctrl-C let through, before its removal is promised",
          "        with uninterrupted():\n            if folder: made = Path(tempfile.mkdtemp(prefix=prefix, dir=where))",
          "        if True:\n            if folder: made = Path(tempfile.mkdtemp(prefix=prefix, dir=where))",
          [T + "test_interrupts.py::test_ctrl_c_the_moment_a_temporary_folder_is_made_leaves_nothing"]),
    Fault("a server's error raised while handling another (Sina's PendingRollbackError) passes as a traceback",
          "        err = err.__cause__ or err.__context__", "        err = None",
          [T + "test_class_failures.py::test_a_lost_connection_behind_sinas_second_try_is_still_one_line"]),
    Fault("a run's partial folder made with Ctrl-C let through, and not removed whatever happens",
          '    return work_in_progress(f".{run_id}.partial-{os.getpid()}-", runs)',
          '    return __import__("contextlib").nullcontext(Path(__import__("tempfile").mkdtemp(prefix=f".{run_id}.partial-{os.getpid()}-", dir=runs)))',
          [T + "test_interrupts.py::test_ctrl_c_the_moment_a_temporary_folder_is_made_leaves_nothing[record_run]"]),
    # issue 27: a sweep's candidates keep no PNG, the chosen one's are drawn at the top; the folds in the calling thread
    Fault("a sweep's candidates keep their three PNGs again (18 matrices drawn for a sweep of six)",
          "                        if record: record_run(store, run, latest=False, helper=helper, matrices=False)  # drawn for the chosen",
          "                        if record: record_run(store, run, latest=False, helper=helper)",
          [T + "test_sweep.py::test_a_candidate_keeps_its_numbers_and_model_and_the_top_shows_the_chosen_ones_matrices"]),
    Fault("the sweep's folds split without the lesson's shuffled stratified folds",
          "    folds = stratified_folds(cv, seed)",
          "    folds = int(cv)",
          [T + "test_sweep.py::test_the_folds_score_as_scikit_learns_own_search_in_the_calling_thread"]),
    Fault("the sweep's folds in threads again (scikit-learn's warning filters, swapped by each fold, raced)",
          "    if client is None: search.fit(X, y)",
          '    if client is None: __import__("joblib").parallel_backend("threading", n_jobs=2).__enter__(); search.fit(X, y)',
          [T + "test_sweep.py::test_the_folds_score_as_scikit_learns_own_search_in_the_calling_thread"]),
    # issue 27: a command's process collects its garbage less often
    Fault("the command's process collects its garbage at Python's own pace (730 passes in a run)",
          "        collect_less_often()  # a command's imports live to its end",
          "        pass  # a command's imports live to its end",
          [T + "test_cli.py::test_a_runs_process_passes_its_collector_over_what_it_imports_rarely"]),
]


def project_copy(target: Path) -> Path:
    "The files git knows, as they are in the working tree, copied to `target`: as the README-install test copies them."
    sys.path.insert(0, str(ROOT / "tests"))
    from test_readme_install import copy_of_the_project
    return copy_of_the_project(target)


def stale(fault: Fault, project: Path = ROOT) -> str | None:
    "Why `fault` cannot be put into the library of `project` (its text is not in exactly one place), in one line; or None."
    count = sum(p.read_text().count(fault.old) for p in (project / "digits_tutorial").glob("*.py"))
    return None if count == 1 else f"{fault.what}: its text is in {count} places of digits_tutorial/, expected exactly one"


def put_in(fault: Fault, project: Path) -> str:
    "Apply `fault` to the library of `project`; return the module it went into. The text must be in exactly one place."
    if why := stale(fault, project): raise ValueError(why)
    path, text = next((p, p.read_text()) for p in sorted((project / "digits_tutorial").glob("*.py")) if fault.old in p.read_text())
    path.write_text(text.replace(fault.old, fault.new))
    return path.name


def run_tests(project: Path, tests: list[str]) -> tuple[int, str, float]:
    "Run `tests` with pytest in `project`, its library imported in place of the installed one: exit status, last line, seconds."
    env = {**os.environ, "PYTHONPATH": str(project), "MPLBACKEND": "Agg"}
    env.pop("PYTEST_ADDOPTS", None)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=project, env=env,
                          capture_output=True, text=True, timeout=1800)
    lines = [l for l in done.stdout.splitlines() if l.strip()]
    return done.returncode, (lines[-1] if lines else done.stderr.strip()[-200:]), time.monotonic() - start


def try_fault(number: int, fault: Fault, work: Path) -> dict:
    "Green without the fault, red with it, in a copy of the project of its own."
    project = project_copy(work / f"fault-{number}")
    try:
        green = run_tests(project, fault.tests)
        module = put_in(fault, project)
        red = run_tests(project, fault.tests)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    return {"number": number, "fault": fault, "module": module, "green": green, "red": red,
            "ok": green[0] == 0 and red[0] == 1}  # 1: tests failed (not 2, 3 or 4: an error of pytest or of collection)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="+", metavar="N", help="only these rows (1-based)")
    parser.add_argument("--jobs", type=int, default=2, help="faults tried at once, each in its own copy (default 2)")
    parser.add_argument("--list", action="store_true", help="print the table of faults and their tests, and run nothing")
    args = parser.parse_args(argv)
    rows = [(n, f) for n, f in enumerate(FAULTS, 1) if not args.only or n in args.only]
    if args.list:
        for n, fault in rows: print(f"{n:>3}  {fault.what}\n       -> {', '.join(t.removeprefix(T) for t in fault.tests)}")
        return 0
    unusable = [f"row {n}: {why}" for n, f in rows if (why := stale(f))]
    if unusable:  # the library changed under the row: say so before minutes of tests, not after
        print("\n".join(unusable), file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="digits-faults-"))
    results = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for done in pool.map(lambda row: try_fault(*row, work), rows):
                results.append(done)
                status = "ok " if done["ok"] else "BAD"
                print(f"{status} {done['number']:>3} {done['fault'].what}  [{done['module']}]: without it "
                      f"{'green' if done['green'][0] == 0 else 'RED'} ({done['green'][2]:.0f} s), with it "
                      f"{'red' if done['red'][0] == 1 else 'GREEN' if done['red'][0] == 0 else 'error'} "
                      f"({done['red'][2]:.0f} s): {done['red'][1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"| # | fault | module | test that catches it | without the fault | with the fault |")
    print(f"|---|---|---|---|---|---|")
    for r in results:
        tests = ", ".join(f"`{t.removeprefix(T)}`" for t in r["fault"].tests)
        print(f"| {r['number']} | {r['fault'].what} | {r['module']} | {tests} | "
              f"{'green' if r['green'][0] == 0 else 'RED'} | {'red' if r['red'][0] == 1 else 'NOT RED'} |")
    bad = [r for r in results if not r["ok"]]
    print(f"\n{len(results) - len(bad)} of {len(results)} faults caught (green without, red with)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
