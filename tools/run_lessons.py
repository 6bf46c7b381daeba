"""Run every lesson once, top to bottom, in a fresh kernel, and keep what it shows: the lessons' test and the site's source.

    python tools/run_lessons.py [OUT] [--only NOTEBOOK ...] [--jobs N]

OUT (default `_executed/`) receives a copy of `nbs/` in which every notebook is saved with its outputs (the repository's
notebooks stay without them), and `lessons.json`: for each lesson its time and its error, if any, and for each exercise
what its check said to the placeholder `...`, to the lesson's own solution and to the typical mistake that
`digits_tutorial.exercises.MISTAKES` names (probed in the lesson's own kernel after its last cell, then left out of the
saved notebook). `tests/test_lessons.py` and `tests/test_exercises.py` read that file; `tools/build_docs.py` renders the
saved notebooks. `lessons.json` also holds a fingerprint of the sources (lessons, library, settings): a later caller
reuses OUT only while the sources are the same (`is_current`).

Each lesson runs in its own folder, as a learner's "Run All" would, with the Python that runs this script (its
`python3` kernel): run it with the Python of the environment to test, e.g. the one the README's first command makes.
Progress of the exercises is recorded nowhere (`DIGITS_TUTORIAL_PROGRESS=off`). Exit status 1 if a lesson fails, one
line for each; OUT is refused if it holds anything this script did not write.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "lessons.json"
CHECK = re.compile(r"^(check_\w+)\((.*)\)\s*$", re.M)
SOLUTION = re.compile(r"<details>\s*<summary>Solution</summary>\s*```python\n(.*?)```\s*</details>", re.S)
PROBE = "exercise-probe"  # the tag of the cells this script adds after a lesson's last cell, and takes out again
TIMEOUT = 900             # seconds one cell may take
IOPUB_TIMEOUT = 120       # seconds a cell's last outputs may come after its reply (nbclient's default: 4)


def sources_fingerprint(root: Path = ROOT) -> str:
    "SHA-256 of what a lesson's outputs depend on in the repository: the notebooks and their pictures, the library, the settings."
    digest = hashlib.sha256()
    files = [root / "settings.ini", *sorted((root / "digits_tutorial").glob("*.py")),
             *sorted(p for p in (root / "nbs").rglob("*") if p.is_file() and "lesson-output" not in p.parts
                     and ".ipynb_checkpoints" not in p.parts)]
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def results(out: Path) -> dict | None:
    "What an earlier run wrote into `out`, or None."
    try: return json.loads((Path(out) / RESULTS).read_text())
    except (OSError, ValueError): return None


def is_current(out: Path, root: Path = ROOT) -> bool:
    "True if `out` holds a run of every lesson, all passed, made from the sources as they are now."
    done = results(out)
    return bool(done) and done.get("fingerprint") == sources_fingerprint(root) and done.get("complete") is True \
        and not any(lesson["error"] for lesson in done["lessons"].values())


def exercises(cells: list[dict]) -> list[dict]:
    "The exercises of a lesson's cells: the check's name, the call of the exercise cell, the solution's code."
    found = []
    for k, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or not source.startswith("answer = ..."): continue
        call = CHECK.search(source)
        solution = SOLUTION.search("".join(cells[k + 1]["source"])) if k + 1 < len(cells) else None
        if not (call and solution):
            raise ValueError(f"cell {k}: an exercise needs a check call and, in the next cell, a <details> solution")
        found.append({"check": call[1], "call": call[0], "solution_code": solution[1]})
    return found


def _probe_source(exercise: dict, mistake: str) -> str:
    "A cell that asks the exercise's check about the placeholder, the solution and the mistake, and prints the answers."
    call, name = exercise["call"], exercise["check"]
    said = "[type(_said).__name__, bool(getattr(_said, 'ok', None)), str(getattr(_said, 'message', _said))]"
    return "\n".join([
        "import json as _json",
        f"_said = {call.replace('answer', '...', 1)}", f"_probe = {{'check': {name!r}, 'placeholder': {said}}}",
        exercise["solution_code"].rstrip(), f"_said = {call}", f"_probe['solution'] = {said}",
        mistake, f"_said = {call}", f"_probe['mistake'] = {said}",
        f"print({PROBE!r}, _json.dumps(_probe))"])


def run_lesson(notebook: Path) -> dict:
    "Execute `notebook` in a fresh kernel in its folder, probe its exercises, save it with its outputs; what happened."
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from digits_tutorial.exercises import MISTAKES
    nb = nbformat.read(notebook, as_version=4)
    found = exercises(nb.cells)
    n_lesson = len(nb.cells)
    for exercise in found:
        mistake = MISTAKES.get(exercise["check"], ("",))[0]
        nb.cells.append(nbformat.v4.new_code_cell(_probe_source(exercise, mistake),
                                                  metadata={"tags": [PROBE, "raises-exception"]}))
    sockets = tempfile.mkdtemp(prefix="kernel-")  # socket files, not TCP ports: nothing to collide with another run
    widgets_file = Path(sockets) / "widget-state.json"
    nb.cells.append(nbformat.v4.new_code_cell(_widget_state_source(widgets_file), metadata={"tags": [PROBE]}))
    kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "ipc"))
    start, error = time.perf_counter(), None
    try:
        # nbclient waits 4 s by default for a cell's last messages after its reply, then goes on without them: on a busy
        # machine the lab's last widgets were lost that way, and its page on the site showed none (seen in CI). Wait
        # longer, and fail the lesson rather than save it with outputs missing.
        NotebookClient(nb, km=kernel, timeout=TIMEOUT, iopub_timeout=IOPUB_TIMEOUT, raise_on_iopub_timeout=True,
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    except CellExecutionError as err:
        error = _failed_cell(nb.cells[:n_lesson]) or _plain(str(err)).strip().splitlines()[-1]  # one line
    except Exception as err:  # a kernel that dies, a timeout: one line, the other lessons go on
        error = f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        if kernel.has_kernel: kernel.shutdown_kernel(now=True)
        if widgets_file.is_file(): _keep_widget_state(nb, json.loads(widgets_file.read_text()))
        shutil.rmtree(sockets, ignore_errors=True)
    seconds = time.perf_counter() - start
    if error is None: error = _unsaved_widget(nb)
    probed = []
    for exercise, cell in zip(found, nb.cells[n_lesson:]):
        printed = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        failed = [f"{o['ename']}: {o['evalue']}" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        answers = next((json.loads(line.split(" ", 1)[1]) for line in printed.splitlines() if line.startswith(PROBE)), {})
        probed.append({**exercise, "mistake_code": MISTAKES.get(exercise["check"], ("",))[0], **answers,
                       "error": failed[0] if failed else None if answers or error else "the probe printed nothing"})
    del nb.cells[n_lesson:]
    nbformat.write(nb, notebook)
    return {"notebook": notebook.name, "seconds": round(seconds, 1), "error": error, "exercises": probed}


def _plain(text: str) -> str:
    "Text without the terminal's colours."
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _failed_cell(cells) -> str | None:
    """One line for the first lesson cell that raised: its number, the line of its own code that raised, and the error
    (a bare `assert` says nothing more than `AssertionError`: the line is what tells which claim failed)."""
    for number, cell in enumerate(cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error": continue
            where, line = f"cell {number}", None
            for text in map(_plain, out.get("traceback", [])):
                here = re.search(r"^Cell In\[\d+\], line (\d+)", text, re.M)
                if not here: continue  # the first frame that is the cell's own: the line the cell itself ran
                arrow = re.search(r"^-+> *\d+ (.*)$", text, re.M)
                where, line = f"cell {number}, line {here[1]}", arrow[1].strip() if arrow else None
                break
            return f"{where}{f' ({line})' if line else ''}: {out['ename']}: {out['evalue']}".rstrip(": ")
    return None


def _widget_state_source(path: Path) -> str:
    """A last cell: the state of every widget alive in the kernel (ipywidgets' `Widget.get_manager_state`, what "save widget
    state" and `ipywidgets.embed` keep), written to `path`, if the lesson imported ipywidgets."""
    return "\n".join([
        "import sys as _sys, json as _json",
        "if 'ipywidgets' in _sys.modules:",
        "    from ipywidgets import Widget as _Widget",
        f"    with open({str(path)!r}, 'w') as _f: _json.dump(_Widget.get_manager_state(), _f)"])


def _keep_widget_state(nb, kernels: dict):
    """Keep in `nb` the state of every widget the kernel held at the end (`kernels`), over what nbclient gathered from the
    messages it saw: a message that did not reach it (seen in CI: the lab's outer box, on a busy machine) cannot leave a
    widget the lesson shows without its state, and a widget changed between cells is kept as it ended."""
    key = "application/vnd.jupyter.widget-state+json"
    saved = nb.metadata.setdefault("widgets", {}).setdefault(key, {"state": {}, "version_major": 2, "version_minor": 0})
    saved["state"].update(kernels.get("state", {}))


def _unsaved_widget(nb) -> str | None:
    "A widget the lesson shows whose state its notebook does not keep (its page could not draw it), said in one line; or None."
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view and view["model_id"] not in saved:
                return f"cell {i}: its widget's state was not saved (model {view['model_id']}), so no page can draw it"
    return None


def _check_out(out: Path):
    "OUT may be new, empty, or an earlier run of this script; anything else is refused before a file is touched."
    if out.exists() and (not out.is_dir() or any(out.iterdir()) and not (out / RESULTS).is_file()):
        raise SystemExit(f"run_lessons: {out} holds files this script did not write: give a new or empty folder")


def run_lessons(out: Path = ROOT / "_executed", only=None, jobs=2, quiet=False) -> dict:
    "Copy `nbs/` into `out` and run every lesson there (or those of `only`), `jobs` at a time; write and return the results."
    out = Path(out).resolve()
    _check_out(out)
    fingerprint = sources_fingerprint()
    earlier = results(out) or {}
    shutil.rmtree(out / "nbs", ignore_errors=True)
    (out / RESULTS).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "nbs", out / "nbs", ignore=shutil.ignore_patterns("lesson-output", ".ipynb_checkpoints"))
    notebooks = sorted((out / "nbs").glob("*.ipynb"))
    if only: notebooks = [nb for nb in notebooks if nb.name in set(only)]
    took = {n: lesson["seconds"] for n, lesson in earlier.get("lessons", {}).items()}
    notebooks.sort(key=lambda nb: -took.get(nb.name, 60))  # the longest first: two workers finish together
    os.environ["DIGITS_TUTORIAL_PROGRESS"] = "off"  # the probes answer exercises: a test's answers are nobody's progress
    start, lessons = time.perf_counter(), {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for done in pool.map(run_lesson, notebooks):
            lessons[done.pop("notebook")] = done
            if not quiet:
                print(f"{done['seconds']:6.1f} s  {notebooks[len(lessons) - 1].name}"
                      f"{'  FAILED: ' + done['error'] if done['error'] else ''}", flush=True)
    summary = {"fingerprint": fingerprint, "complete": not only, "python": sys.executable,
               "seconds": round(time.perf_counter() - start, 1), "lessons": dict(sorted(lessons.items()))}
    (out / RESULTS).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "_executed",
                        help="folder of the executed copy and lessons.json (default: _executed)")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these notebooks (e.g. 04_store.ipynb)")
    parser.add_argument("--jobs", type=int, default=2, help="lessons run at once (default 2)")
    args = parser.parse_args(argv)
    done = run_lessons(args.out, args.only, args.jobs)
    failed = {name: lesson["error"] for name, lesson in done["lessons"].items() if lesson["error"]}
    for name, error in failed.items(): print(f"run_lessons: {name} failed: {error}", file=sys.stderr)
    print(f"{len(done['lessons'])} lessons in {done['seconds']:.0f} s, {len(failed)} failed, into {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
