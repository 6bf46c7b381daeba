"""Shared fixtures of the test suite."""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXECUTED = ROOT / "_executed"  # where tools/run_lessons.py leaves every lesson executed, and lessons.json

# The exercises' checks keep each answer's verdict (the exercises appendix): a test's answers are nobody's progress, so
# the suite and every process it starts keep none, unless a test says where (keep_progress, or this variable in a child's
# environment).
os.environ["DIGITS_TUTORIAL_PROGRESS"] = "off"

# Tests send Ctrl-C (SIGINT) to the commands they start, as a terminal does. A shell starts a background job (`bash
# .ci/run &`, nohup) with SIGINT ignored, and an ignored signal stays ignored in every child: the commands would never see
# it. A handler is not inherited (a child starts with the default), so the suite takes one.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def root() -> Path:
    "The project's top folder."
    return ROOT


@pytest.fixture(scope="session")
def cli():
    """Run `digits-tutorial` as a user would: the script installed beside this Python (not whichever one `PATH`
    finds first, which may be a stale install); return a function of the arguments giving the completed process."""
    script = Path(sys.executable).with_name("digits-tutorial")
    if not script.is_file():
        pytest.fail(f"no digits-tutorial script beside {sys.executable}: install the package in this environment "
                    "(pip install -e .)", pytrace=False)

    def run(*args, cwd=None):
        return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    return run


SMALL_DIGITS = 300  # digits in the `small` file: a run whose every step is short, each still long enough to be caught


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> Path:
    "The first 300 lines of the bundled UCI file, as a file of their own: a class's or a run's data that is quick to use."
    import gzip
    from digits_tutorial.data import bundled_path
    path = tmp_path_factory.mktemp("data") / "small.tra"
    path.write_text("\n".join(gzip.decompress(bundled_path().read_bytes()).decode().splitlines()[:SMALL_DIGITS]) + "\n")
    return path


@pytest.fixture(scope="session")
def one_run(tmp_path_factory, cli) -> Path:
    """A results folder as `digits-tutorial run --out results --quiet` leaves it (the README's main job, once per test
    session, for all of pytest-xdist's workers): nobody changes it; a test that changes such a folder works on a copy of
    it (`shutil.copytree`, as `cp -r` does)."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' temporary folders' parent
    out = shared / "one-run" / "results"
    with FileLock(str(shared / "one-run.lock")):  # the first worker to ask makes it; the others wait, then use it
        if not (shared / "one-run" / "made").is_file():
            shutil.rmtree(out.parent, ignore_errors=True)
            done = cli("run", "--out", out, "--quiet")
            assert done.returncode == 0, done.stderr
            (shared / "one-run" / "made").touch()
    return out


def local_mariadb(database: str):
    """A real MariaDB server of the caller's own (`LocalMariaDB`: a temporary data folder, a free port of 127.0.0.1), with
    `database`, to use in a `with`. Without MariaDB on the machine, a failure, never a skip: in CI or not, a defect to see."""
    from digits_tutorial.classroom import LocalMariaDB
    if not LocalMariaDB.available():
        pytest.fail("MariaDB's server (mariadbd, mariadb-install-db) is not on this machine: install Debian's mariadb-server "
                    "(bash .ci/run does); these tests do not skip", pytrace=False)
    return LocalMariaDB(database=database)


def run_lessons_tool():
    "tools/run_lessons.py as a module: its `results`, `sources_fingerprint` and the rest."
    spec = importlib.util.spec_from_file_location("run_lessons", ROOT / "tools" / "run_lessons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lessons_lock():
    "The lock of `_executed/`: one process at a time runs the lessons into it (pytest-xdist's workers, CI's phases)."
    from filelock import FileLock
    return FileLock(str(ROOT / "_executed.lock"), timeout=3600)


INSTALL_PENDING = "DIGITS_TUTORIAL_INSTALL_PENDING"  # CI: a file that says the install test has not finished yet
INSTALL_WAIT = 3600  # seconds a test may wait for it
INSTALL_REPORT = "install.txt"  # CI: what the install test printed (each lesson's time, each step's), beside the phases' table


def wait_for_install():
    """In CI (`.ci/run`), the install test (`test_readme_install.py`) runs every lesson and builds the site while the rest of
    the suite runs beside it: what needs those waits until it is done (its file `DIGITS_TUTORIAL_INSTALL_PENDING` gone),
    rather than running them again; if it failed (the file says so), this fails at once. Outside CI, nothing to wait for."""
    pending = os.environ.get(INSTALL_PENDING)
    if not pending: return
    deadline = time.monotonic() + INSTALL_WAIT
    while Path(pending).is_file():
        if Path(pending).read_text().strip() == "failed":
            pytest.fail("the README's first command, the lessons or the site failed in test_readme_install.py: see that test",
                        pytrace=False)
        if time.monotonic() > deadline: pytest.fail(f"test_readme_install.py did not end in {INSTALL_WAIT} s", pytrace=False)
        time.sleep(1)


def lessons_results(python=sys.executable) -> dict:
    """What every lesson did, run once: `_executed/lessons.json` when a complete run made it from the sources as they are
    now (in CI, the install test makes it, in the environment of the README's first command); otherwise every
    lesson is run here, with `python`, and the results kept for the next caller. A lesson that failed is a result, not a
    reason to run it again."""
    tool = run_lessons_tool()
    wait_for_install()
    with lessons_lock():
        done = tool.results(EXECUTED)
        if not (done and done.get("complete") and done.get("fingerprint") == tool.sources_fingerprint()):
            start = time.monotonic()
            print(f"\n[lessons] {EXECUTED / tool.RESULTS} is missing or older than the sources: running every lesson", flush=True)
            ran = subprocess.run([str(python), str(ROOT / "tools" / "run_lessons.py"), str(EXECUTED)], capture_output=True,
                                 text=True, timeout=3600, env={**os.environ, "MPLBACKEND": "Agg"})
            print(f"[lessons] {time.monotonic() - start:.0f} s: {ran.stdout.strip().splitlines()[-1:]}", flush=True)
            done = tool.results(EXECUTED)
            if not done: pytest.fail(f"tools/run_lessons.py wrote no results:\n{ran.stdout[-2000:]}\n{ran.stderr[-3000:]}")
    return done


@pytest.fixture(scope="session")
def executed_lessons() -> dict:
    "The results of every lesson, run once (`lessons_results`); each lesson's executed copy is in `_executed/nbs`."
    return lessons_results()


# The order of the test files. CI runs the suite on two workers (pytest-xdist, one file at a time each: `--dist loadscope
# --no-loadscope-reorder`, without which xdist orders files by their number of tests). First the install test, minutes of
# pip, lessons and the site, beside which the other worker takes the files that need none of it; then the files whose
# tests take longest, so that the two workers finish together rather than one waiting on the other's last long file; last
# the files that read what the install test made (the executed lessons, the site), which by then is done. Only the order
# changes: each file runs alone, in any order, and then makes what it needs itself.
FIRST = ["test_readme_install.py"]
LONGEST_FIRST = ["test_travel.py", "test_class.py", "test_lab_speed.py", "test_sweep.py", "test_browser_draw.py",
                 "test_runs.py", "test_lab.py", "test_reruns.py", "test_draw.py", "test_improve.py",
                 "test_browser_board.py", "test_lab_app.py", "test_interrupts.py", "test_browser.py", "test_browser_app.py",
                 "test_cli.py", "test_class_failures.py", "test_lab_kernels.py", "test_progress_class.py",
                 "test_uci_protocol.py", "test_download.py", "test_progress.py", "test_failures.py", "test_bad_input.py"]
# (the order of their durations in a CI run's test-artifacts/pytest.xml; the files not named take a few seconds each)
LAST = ["test_site.py", "test_lessons.py", "test_exercises.py"]


def pytest_collection_modifyitems(items):
    order = FIRST + LONGEST_FIRST
    rank = {name: i for i, name in enumerate(order)} | {name: len(order) + 1 + i for i, name in enumerate(LAST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(order)))  # stable: a file's own order is kept


def pytest_collection_finish(session):
    "A run without the install test (`-m 'not install'`, `-k`, a file named) has nothing to wait for: the lessons run here."
    pending = os.environ.get(INSTALL_PENDING)
    if pending and not any(item.path.name == "test_readme_install.py" and item.get_closest_marker("install")
                           for item in session.items):
        Path(pending).unlink(missing_ok=True)


def _cpu_seconds() -> float:
    import resource
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item.cpu_at_start = _cpu_seconds()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    "Each test's processor time, setup to teardown (this process and the processes it waited for), in the JUnit XML."
    report = (yield).get_result()
    if call.when == "teardown" and hasattr(item, "cpu_at_start"):
        report.user_properties.append(("cpu_seconds", round(_cpu_seconds() - item.cpu_at_start, 2)))


def pytest_terminal_summary(terminalreporter):
    "In CI (`.ci/run`), each phase's time and the total, just before pytest's summary line."
    table = os.environ.get("DIGITS_TUTORIAL_CI_PHASES")
    if not table or os.environ.get("PYTEST_XDIST_WORKER") or not Path(table).is_file(): return
    now = time.time()
    rows = [line.split("\t", 2) for line in Path(table).read_text().splitlines() if line.strip()]
    # this pytest, its workers and what they ran; less the earlier phases' (counted by the shell that exec'd it, if it was)
    used = _cpu_seconds() - float(os.environ.get("DIGITS_TUTORIAL_CI_CPU_INHERITED", 0))
    rows.append((f"{now - float(os.environ['DIGITS_TUTORIAL_CI_PHASE_START']):.0f}", f"{used:.0f}",
                 os.environ.get("DIGITS_TUTORIAL_CI_PHASE", "this phase") + " (to its summary line)"))
    report = Path(table).parent / INSTALL_REPORT
    if report.is_file():
        terminalreporter.section("the README's first command, every lesson, the site (tests/test_readme_install.py)")
        for line in report.read_text().splitlines(): terminalreporter.write_line(line)
    terminalreporter.section("CI phases (.ci/run): wall time, and processor time (user and system)")
    for seconds, cpu, name in rows: terminalreporter.write_line(f"{int(seconds):6d} s {cpu + ' s' if cpu else '':>8}  {name}")
    total = now - float(os.environ["DIGITS_TUTORIAL_CI_START"])
    terminalreporter.write_line(f"{total:6.0f} s {'':>8}  in all ({total / 60:.1f} minutes)")
