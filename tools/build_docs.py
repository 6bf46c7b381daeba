"""Build the documentation site: the executed lessons, processed by nbdev, rendered by Sphinx with MyST-NB.

    python tools/build_docs.py [OUT]        (OUT: settings.ini's doc_path, `_docs/`, by default)

1. The lessons, executed once with their outputs by `tools/run_lessons.py` into `_executed/`: reused when they are
   current for the sources (`run_lessons.is_current`), run (once) when they are not. This script executes nothing else.
2. nbdev's own processing of those notebooks (`proc_nbs`, what `nbdev_proc_nbs` gives Quarto): front matter, hidden
   cells dropped, `show_doc` and exported cells, links to the library's names.
3. Each processed notebook made a MyST-NB page (`convert`): its front matter a title and a lead; the page named as Quarto
   names it (nbdev's `output-file`: `01_data.ipynb` is `data.html`); links between notebooks and nbdev's absolute links
   made links to the local pages; each `show_doc` output a section of Markdown (name, signature, docstring: a class as
   a class); Quarto's cell options (`echo: false`...) as MyST-NB's tags; the page order, the sidebar's, from
   `nbs/sidebar.yml`, the one place that orders the pages.
4. `sphinx-build -W -n` with the configuration in `docs/` (`nb_execution_mode = "off"`): any warning is an error. The
   widget manager is fetched (`npm pack`, pinned) and served from the site (`docs/widgets_offline.py`).

The site is made in a new folder beside OUT and put in its place only when whole; OUT must be new, empty, or an earlier
build of this script (marked by the file `.digits-tutorial-site.json`, which also says what sources it was made from):
anything else is refused with one line and nothing is touched. It prints the site's build time (the lessons' execution
apart) and its number of pages; on a problem it prints one line for each and exits 1.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_lessons  # noqa: E402  (beside this script)

DOCS = ROOT / "docs"                 # Sphinx's configuration and the site's static files
EXECUTED = ROOT / "_executed"        # run_lessons' default folder
STAMP = ".digits-tutorial-site.json"  # the mark of a build of this script, in OUT
SETTINGS = ConfigParser(delimiters=["="])
SETTINGS.read(ROOT / "settings.ini", encoding="utf-8")
CFG = SETTINGS["DEFAULT"]
DOC_URL = CFG["doc_host"].rstrip("/") + "/" + CFG["doc_baseurl"].strip("/") + "/"  # where nbdev's links point
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
NESTED = re.compile(r"\[\[(`[^`\]]*`)\]\([^)\s]*\)\]\(")
DIRECTIVE = re.compile(r"^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


class Problem(Exception):
    "A problem of the build: one line for the user."


# --- what the site is made from ------------------------------------------------------------------------------------

def site_fingerprint(root: Path = ROOT) -> str:
    "SHA-256 of what the site depends on: the lessons' sources (run_lessons' fingerprint), docs/ and this script."
    digest = hashlib.sha256(run_lessons.sources_fingerprint(root).encode())
    for path in [Path(__file__).resolve(), *sorted(p for p in (root / "docs").rglob("*") if p.is_file()
                                                   and "__pycache__" not in p.parts)]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stamp(out: Path) -> dict | None:
    "What an earlier build wrote into `out` about itself, or None."
    try: return json.loads((Path(out) / STAMP).read_text())
    except (OSError, ValueError): return None


def is_current(out: Path, root: Path = ROOT) -> bool:
    "True if `out` holds a whole build of this script made from the sources as they are now."
    made = stamp(out)
    return bool(made) and made.get("fingerprint") == site_fingerprint(root)


def check_out(out: Path):
    "OUT may be new, empty, or an earlier build of this script; anything else is refused before a file is touched."
    if out.exists() and (not out.is_dir() or any(out.iterdir()) and stamp(out) is None):
        raise Problem(f"build_docs: {out} holds files this script did not write (no {STAMP}): "
                      "give a new or empty folder, or an earlier build")


def sidebar_order(nbs: Path) -> list[str]:
    "The notebooks in the order of `sidebar.yml`, the one place that orders the pages."
    import yaml
    return yaml.safe_load((nbs / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]


# --- 1 and 2: the executed lessons, processed by nbdev -------------------------------------------------------------

def executed_lessons(executed: Path = EXECUTED) -> tuple[Path, str]:
    "The executed copy of the lessons, run now if it is not current; (its nbs folder, what was done)."
    if run_lessons.is_current(executed): return executed / "nbs", "reused"
    print(f"build_docs: the lessons are not current in {executed}: running them (tools/run_lessons.py)", flush=True)
    done = run_lessons.run_lessons(executed)
    failed = [f"{name}: {lesson['error']}" for name, lesson in done["lessons"].items() if lesson["error"]]
    if failed: raise Problem("\n".join(f"build_docs: lesson {line}" for line in failed))
    return executed / "nbs", f"run in {done['seconds']:.0f} s"


def process(nbs: Path, stage: Path) -> Path:
    "nbdev's processing (`proc_nbs`) of the executed notebooks in `nbs`, into `stage/_proc`; warnings are problems."
    shutil.copy(ROOT / "settings.ini", stage / "settings.ini")
    shutil.copytree(nbs, stage / "nbs", ignore=shutil.ignore_patterns("lesson-output", ".ipynb_checkpoints"))
    code = "from nbdev.serve import proc_nbs; proc_nbs(n_workers=0, force=True)"
    done = subprocess.run([sys.executable, "-c", code], cwd=stage, capture_output=True, text=True)
    if done.returncode:
        raise Problem(f"build_docs: nbdev's processing failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    said = [line for line in done.stderr.splitlines() if re.search(r"\w*Warning: ", line)]  # nbdev's own warnings
    if said: raise Problem("\n".join(f"build_docs: nbdev: {line.strip()}" for line in said))
    return stage / "_proc"


# --- 3: a processed notebook as a MyST-NB page --------------------------------------------------------------------

def page_of(proc_nb: dict, name: str) -> str:
    "The page nbdev names a notebook (its front matter's `output-file`), without `.html`: `01_data.ipynb` is `data`."
    return front_matter(proc_nb).get("output-file", name).rsplit(".", 1)[0]


def front_matter(nb: dict) -> dict:
    "The YAML front matter of a processed notebook (its first cell, raw), or {}."
    import yaml
    first = nb["cells"][0] if nb["cells"] else None
    text = "".join(first["source"]) if first else ""
    if first and first["cell_type"] == "raw" and text.startswith("---"):
        return yaml.safe_load(text.strip().strip("-")) or {}
    return {}


def local_link(target: str, pages: dict[str, str]) -> str:
    "A link of a lesson as it must be in the site: to a notebook, or nbdev's absolute link to a page, made local."
    if target.startswith(DOC_URL): target = target[len(DOC_URL):]  # nbdev's links to its index, e.g. data.html#read_lines
    path, hash_, fragment = target.partition("#")
    if path in pages: path = pages[path] + ".ipynb"                # another lesson: 01_data.ipynb
    elif path.endswith(".html") and path[:-5] in pages.values(): path = path[:-5] + ".ipynb"  # a page: data.html
    return path + hash_ + fragment


def local_links(text: str, pages: dict[str, str]) -> str:
    "Every link of a Markdown text made local; a link nbdev put inside a lesson's own link is taken out again."
    text = NESTED.sub(r"[\1](", text)  # nbdev links `run_model` in "[`run_model`](07_runs.ipynb)": a link in a link
    return LINK.sub(lambda m: m[1] + local_link(m[2], pages) + m[3], text)


def directives(source: str) -> tuple[dict[str, str], str]:
    "The Quarto/nbdev options of a code cell (`#| echo: false`) and its code without them."
    found, code = {}, []
    for line in source.splitlines():
        m = DIRECTIVE.match(line)
        if m: found[m[1]] = m[2].strip("'\"")
        else: code.append(line)
    return found, "\n".join(code).strip("\n")


def doc_section(markdown: str, classes: set[str], pages: dict[str, str]) -> str:
    """A `show_doc` output as Markdown of its own: the name a heading (a section, in the contents and the search), the
    signature a Python block (a class as `class Name(...)`), the docstring; without nbdev's rule and GitHub link."""
    text = re.sub(r"\A\s*---\s*\n", "", markdown)
    text = re.sub(r"^\[source\]\([^)]*\)\{[^}]*\}\s*$\n?", "", text, flags=re.M)
    heading = re.search(r"^#+ (\S+)\s*$", text, re.M)
    if not heading: raise Problem(f"build_docs: a show_doc output without a heading: {markdown[:80]!r}")
    name = heading[1]

    def signature(m):  # fastcore's `def name(\n    a, b\n)->int:`, on one line when it fits: `def name(a, b) -> int`
        lines = [line for line in m[1].splitlines() if line.strip()]
        code = re.sub(r"\)\s*->\s*", ") -> ", "\n".join(lines)).rstrip().removesuffix(":")
        one_line = re.sub(r"\n\s*", " ", re.sub(r"\(\s+", "(", re.sub(r",?\s*\n\s*\)", ")", code)))
        if len(one_line) <= 110 and "#" not in code: code = one_line  # (a comment would swallow the rest)
        if name.split(".")[-1] in classes:  # fastcore shows a class as its __init__: `def Digits(...)->None:`
            code = re.sub(r"^def ", "class ", code).removesuffix(" -> None")
        return f"```python\n{code}\n```"
    text = re.sub(r"```python\n(.*?)```", signature, text, flags=re.S)
    return local_links(text.strip() + "\n", pages)


def widget_views(nb: dict) -> list[str]:
    return [out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for cell in nb["cells"]
            for out in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]


def prune_widgets(nb: dict):
    "Keep the saved state of the widgets a page shows (and those they use), none on a page that shows no widget."
    key = "application/vnd.jupyter.widget-state+json"
    saved = nb["metadata"].get("widgets", {}).get(key, {})
    state, wanted, todo = saved.get("state", {}), set(), widget_views(nb)
    while todo:
        model = todo.pop()
        if model in wanted or model not in state: continue
        wanted.add(model)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model]))
    if wanted: nb["metadata"]["widgets"] = {key: {**saved, "state": {k: v for k, v in state.items() if k in wanted}}}
    else: nb["metadata"].pop("widgets", None)


def text(lines) -> str:
    "A notebook's text, kept as a list of lines or as one string."
    return "".join(lines) if isinstance(lines, list) else lines


def markdown_cell(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def convert(nb: dict, pages: dict[str, str], classes: set[str]) -> dict:
    "A notebook processed by nbdev, as a MyST-NB page (see the module's docstring)."
    nb = copy.deepcopy(nb)
    fm = front_matter(nb)
    cells = []
    if fm:
        title = f"# {fm.get('title', '')}\n"
        lead = f"\n{{.lead}}\n{fm['description']}\n" if fm.get("description") else ""
        cells.append(markdown_cell(local_links(title + lead, pages)))
    for cell in nb["cells"][1 if fm else 0:]:
        source = text(cell["source"])
        if cell["cell_type"] == "markdown":
            if source.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"): continue
            cells.append(markdown_cell(local_links(source, pages)))
        elif cell["cell_type"] == "code":
            options, code = directives(source)
            outputs = cell.get("outputs", [])
            if options.get("include") == "false" or not outputs and (not code or options.get("echo") == "false"): continue
            markdown = "".join(text(out["data"]["text/markdown"]) for out in outputs if "text/markdown" in out.get("data", {}))
            if options.get("output") == "asis" and markdown:  # Quarto's "the output is Markdown of the page"
                asis = doc_section(markdown, classes, pages) if re.match(r"^show_doc\(", code) else local_links(markdown, pages)
                cells.append(markdown_cell(asis))
                continue
            tags = set(cell.get("metadata", {}).get("tags", []))
            if options.get("echo") == "false" or not code: tags.add("remove-input")
            if options.get("output") == "false": tags.add("remove-output")
            for out in outputs:
                if "text/markdown" in out.get("data", {}):
                    out["data"]["text/markdown"] = local_links(text(out["data"]["text/markdown"]), pages)
            cells.append({"cell_type": "code", "execution_count": cell.get("execution_count"),
                          "metadata": {"tags": sorted(tags)} if tags else {}, "outputs": outputs, "source": code})
        # raw cells other than the front matter: nothing for a web page
    nb["cells"] = cells
    prune_widgets(nb)
    return nb


def classes_of(executed_nb: dict) -> set[str]:
    "The names of the classes a lesson defines (nbdev's processing drops exported code; the executed notebook has it)."
    code = "\n".join("".join(c["source"]) for c in executed_nb["cells"] if c["cell_type"] == "code")
    return set(re.findall(r"^class (\w+)", code, re.M))


def toctree(docnames: list[str]) -> dict:
    "The hidden table of contents of the home page: the sidebar, in sidebar.yml's order."
    return markdown_cell("```{toctree}\n:hidden:\n:maxdepth: 1\n\n" + "\n".join(docnames) + "\n```\n")


def convert_all(proc: Path, executed: Path, src: Path) -> list[str]:
    "Every processed notebook of sidebar.yml as a page in `src` (and the pictures they show); the page names, in order."
    order = sidebar_order(proc)
    notebooks = {p.name: json.loads(p.read_text()) for p in proc.glob("*.ipynb")}
    unlisted = sorted(set(notebooks) - set(order))
    if unlisted: raise Problem(f"build_docs: not in nbs/sidebar.yml, so on no page: {', '.join(unlisted)}")
    missing = [name for name in order if name not in notebooks]
    if missing: raise Problem(f"build_docs: nbs/sidebar.yml lists notebooks that are not there: {', '.join(missing)}")
    pages = {name: page_of(nb, name) for name, nb in notebooks.items()}
    src.mkdir(parents=True)
    for name in order:
        page = convert(notebooks[name], pages, classes_of(json.loads((executed / name).read_text())))
        if pages[name] == "index": page["cells"].append(toctree([pages[n] for n in order if pages[n] != "index"]))
        (src / f"{pages[name]}.ipynb").write_text(json.dumps(page))
    if (proc / "images").is_dir(): shutil.copytree(proc / "images", src / "images")
    return [pages[name] for name in order]


# --- 4: Sphinx ------------------------------------------------------------------------------------------------------

def sphinx(src: Path, out: Path, doctrees: Path):
    "Render the pages with Sphinx, every warning an error (`-W -n`); each warning is a problem of one line."
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going", "-q", "-c", str(DOCS),
           "-d", str(doctrees), str(src), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    said = [line.replace(str(src) + "/", "") for line in done.stderr.splitlines()
            if re.search(r"WARNING|ERROR|CRITICAL|Extension error|Exception", line)]
    if done.returncode or said:
        raise Problem("\n".join(f"build_docs: sphinx: {line.strip()}" for line in said)
                      or f"build_docs: sphinx-build failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def build(out: Path, executed: Path = EXECUTED) -> dict:
    "Build the site into `out` (see the module's docstring); what was built. Raises Problem."
    out = out.resolve()
    check_out(out)
    nbs, lessons = executed_lessons(executed)
    start = time.perf_counter()
    fingerprint = site_fingerprint()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="digits-docs-") as tmp:
        stage = Path(tmp)
        proc = process(nbs, stage)
        docnames = convert_all(proc, nbs, stage / "pages")
        # beside OUT, put in place by a rename; MyST-NB keeps its output files beside the site, in this folder too
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            new = work / "site"
            sphinx(stage / "pages", new, stage / "doctrees")
            seconds = time.perf_counter() - start
            made = {"fingerprint": fingerprint, "pages": docnames, "seconds": round(seconds, 1), "lessons": lessons}
            (new / STAMP).write_text(json.dumps(made, indent=1) + "\n")
            if out.exists(): out.rename(work / "old")
            new.rename(out)
        finally:
            shutil.rmtree(work)
    return made


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / CFG.get("doc_path", "_docs"),
                        help="the site's folder (default: settings.ini's doc_path, _docs)")
    args = parser.parse_args(argv)
    try:
        made = build(args.out)
    except Problem as problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"build_docs: {len(made['pages'])} pages in {made['seconds']:.1f} s (the lessons' execution apart: "
          f"{made['lessons']}), into {args.out}; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
