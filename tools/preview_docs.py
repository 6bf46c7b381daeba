"""Preview the documentation site without Quarto: every lesson executed, processed by nbdev, rendered to HTML, checked in
Chromium.

    python tools/preview_docs.py OUTDIR [--only NOTEBOOK ...] [--no-browser]

How the site gets its outputs: the notebooks are committed without outputs (nbdev_clean), so the site is built from an
executed copy. This script does what the site's build does, up to Quarto:

1. copy `nbs/` (and `settings.ini`) to a staging folder and execute every notebook there with nbclient, as a learner's
   "Run All" would (outputs, figures and tables are kept in the copy, never in the repository);
2. process the executed copies with nbdev's own processors (`nbdev.serve.proc_nbs`: front matter, `show_doc`, hidden
   cells), which is what `nbdev_proc_nbs` gives Quarto;
3. render each processed notebook to one HTML page named as Quarto would name it (nbdev's `output-file`, e.g.
   `01_data.ipynb` -> `data.html`), links to other notebooks rewritten to their pages as Quarto rewrites them;
4. open every page in Debian's Chromium (Playwright) and check that it shows what its notebook produces: the page
   answers 200 (not a 404), every heading of the notebook is on it, every visible output of the executed notebook is
   an output on the page and every figure a loaded image among them (pictures in the markdown are checked apart:
   they load, but they are no output), a figure or a table among the outputs of every numbered lesson, no traceback
   and no warning in any output, and every link between pages resolving to a page and, with a `#fragment`, to an
   element of it; then save a screenshot of each page in `OUTDIR/screenshots/`.

Quarto executes nothing here (`_quarto.yml` has no `execute` option): it renders what step 2 made, so the site and
this preview show the same outputs. The script exits 1 and lists every problem if any check fails.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import html
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WARNING = re.compile(r"\b\w*Warning: ")  # how Python prints a warning: "file.py:12: UserWarning: message"


def page_name(notebook: str) -> str:
    "The page Quarto makes of a notebook: nbdev's `output-file`, the name without its number prefix."
    return re.sub(r"^\d+[a-zA-Z0-9]*_", "", notebook.lower()).rsplit(".", 1)[0] + ".html"


def stage(staging: Path, only=None) -> list[Path]:
    "Copy the lessons and the settings nbdev reads into `staging`; return the notebooks to build."
    shutil.copy(ROOT / "settings.ini", staging / "settings.ini")
    shutil.copytree(ROOT / "nbs", staging / "nbs", ignore=shutil.ignore_patterns("lesson-output", ".ipynb_checkpoints"))
    notebooks = sorted((staging / "nbs").glob("*.ipynb"))
    if only: notebooks = [nb for nb in notebooks if nb.name in only]
    return notebooks


def execute(notebook: Path) -> tuple[str, float, str | None]:
    "Run every cell of `notebook` in a fresh kernel, in its folder, and save it with its outputs; (name, seconds, error)."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    error = None
    from jupyter_client.manager import KernelManager
    sockets = tempfile.mkdtemp(prefix="kernel-")  # local socket files, one folder per kernel: no TCP port, no warning about one
    kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "ipc"))
    try:
        NotebookClient(nb, km=kernel, timeout=900, resources={"metadata": {"path": str(notebook.parent)}}).execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1]
    finally:
        if kernel.has_kernel: kernel.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    nbformat.write(nb, notebook)
    return notebook.name, time.perf_counter() - start, error


def _directives(source: str) -> dict[str, str]:
    "The nbdev directives of a cell (`#| hide`, `#| echo: false`...), as {name: value}."
    lines = [line[2:] for line in source.splitlines() if line.startswith("#|")]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def shown(cell) -> bool:
    "True if the page shows the outputs of this code cell: nbdev drops hidden cells, and cells asked not to show them."
    d = _directives("".join(cell.get("source", "")))
    return "hide" not in d and d.get("include") != "false" and d.get("output") != "false"


def plain(text: str) -> str:
    "Text without markup, spaces or case, to compare a markdown heading with its HTML."
    return re.sub(r"[^0-9a-z]+", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text.lower()))


def headings(nb) -> list[str]:
    "The headings of a notebook's markdown cells (outside code blocks), as plain text."
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown": continue
        fenced = False
        for line in "".join(cell["source"]).splitlines():
            if line.lstrip().startswith("```"): fenced = not fenced
            elif not fenced and re.match(r"^#{1,4} ", line): found.append(plain(line.lstrip("#")))
    return found


def output_problems(notebook: Path) -> tuple[list[str], dict]:
    """Tracebacks, errors and warnings in the outputs of an executed notebook, and what its page must show: the outputs
    of its shown cells, the figures among them, its headings."""
    nb = json.loads(notebook.read_text())
    problems, figures, outputs = [], 0, 0
    for k, cell in enumerate(nb["cells"]):
        visible = cell["cell_type"] == "code" and shown(cell)
        for out in cell.get("outputs", []):
            outputs += visible and out["output_type"] in ("stream", "display_data", "execute_result")
            if out["output_type"] == "error":
                problems.append(f"{notebook.name} cell {k}: {out['ename']}: {out['evalue']}")
            elif out["output_type"] == "stream" and out["name"] == "stderr":
                problems.append(f"{notebook.name} cell {k}: printed on standard error: {''.join(out['text'])[:200]!r}")
            else:
                data = out.get("data", {})
                text = "".join(data.get("text/plain", "")) + "".join(out.get("text", ""))
                if WARNING.search(text): problems.append(f"{notebook.name} cell {k}: a warning in the output: {text[:200]!r}")
                figures += visible and "image/png" in data
    return problems, {"figures": figures, "outputs": outputs, "headings": headings(nb)}


def process(staging: Path):
    "nbdev's processing of the executed notebooks into `staging/_proc`, as `nbdev_proc_nbs` does it for Quarto."
    import subprocess
    code = "from nbdev.serve import proc_nbs; proc_nbs(n_workers=0, force=True)"
    done = subprocess.run([sys.executable, "-c", code], cwd=staging, capture_output=True, text=True)
    if done.returncode: raise RuntimeError(f"nbdev's processing failed:\n{done.stderr[-3000:]}")


def _front_matter(nb) -> dict:
    import yaml
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "raw" and first.source.startswith("---"):
        nb.cells.pop(0)
        return yaml.safe_load(first.source.strip().strip("-")) or {}
    return {}


def render(proc: Path, out: Path, pages: list[tuple[str, str]]):
    "One HTML page per processed notebook in `out`, with a title, a list of all pages, and links rewritten as Quarto does."
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"echo-false"}), enabled=True)
    nav = "".join(f"<li><a href='{page}'>{html.escape(title)}</a></li>" for page, title in pages)
    for notebook in sorted(proc.glob("*.ipynb")):
        nb = nbformat.read(notebook, as_version=4)
        fm = _front_matter(nb)
        for cell in nb.cells:  # Quarto shows only the output of a cell marked `#| echo: false` (nbdev's show_doc cells)
            if cell.cell_type == "code" and re.search(r"^#\|\s*echo:\s*false", cell.source, re.M):
                cell.metadata.setdefault("tags", []).append("echo-false")
        body, _ = exporter.from_notebook_node(nb)
        body = re.sub(r'href="(?:\./)?([\w-]+\.ipynb)(#[^"]*)?"', lambda m: f'href="{page_name(m[1])}{m[2] or ""}"', body)
        head = (f"<nav class='site-pages'><ul>{nav}</ul></nav><header class='page-title'><h1>{html.escape(fm.get('title', ''))}</h1>"
                f"<p class='description'>{html.escape(fm.get('description', ''))}</p></header>")
        body = body.replace("<main>", "<main>" + head, 1) if "<main>" in body else body.replace("<body", head + "<body", 1)
        (out / fm.get("output-file", page_name(notebook.name))).write_text(body)
    if (proc / "images").is_dir(): shutil.copytree(proc / "images", out / "images", dirs_exist_ok=True)


def serve(folder: Path):
    "A static server of `folder` on 127.0.0.1; returns (server, base address)."
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_pages(out: Path, expected: dict[str, dict]) -> list[str]:
    """Open every page in Chromium: found (200), its headings and outputs there, figures loaded, a figure or table
    among a numbered lesson's outputs, no traceback, links that resolve."""
    from playwright.sync_api import sync_playwright
    problems = []
    shots = out / "screenshots"
    shots.mkdir(exist_ok=True)
    server, base = serve(out)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
            for name, want in sorted(expected.items()):
                response = page.goto(f"{base}/{name}", wait_until="load")
                if response is None or response.status != 200:
                    problems.append(f"{name}: the page answers {response.status if response else 'nothing'}, not 200")
                    continue
                def images(selector, loaded=True):  # images on the page, those loaded only if asked
                    done = ".filter(i => i.complete && i.naturalWidth > 0)" if loaded else ""
                    return page.evaluate(f"() => [...document.querySelectorAll('{selector}')]{done}.length")
                figures = images(".jp-OutputArea-output img")  # outputs only: a picture in the text is no output
                text_pictures = ".jp-RenderedMarkdown img, .jp-MarkdownOutput img"
                broken = images(text_pictures, loaded=False) - images(text_pictures)
                tables = page.locator(".jp-OutputArea-output table").count()
                outputs_shown = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].filter("
                                              "o => o.innerText.trim() || o.querySelector('img, svg, table')).length")
                on_page = {plain(h) for h in page.locator("h1, h2, h3, h4").all_inner_texts()}
                missing = [h for h in want["headings"] if h not in on_page]
                found = [(missing, f"{len(missing)} headings of the notebook are not on the page, e.g. {missing[:1]}"),
                         (outputs_shown < want["outputs"],
                          f"{outputs_shown} outputs on the page, the executed notebook shows {want['outputs']}"),
                         (figures < want["figures"], f"{figures} figures loaded, the notebook draws {want['figures']}"),
                         (broken, f"{broken} pictures of the text do not load"),
                         (want["lesson"] and figures + tables == 0, "no figure and no table among the outputs")]
                problems += [f"{name}: {said}" for wrong, said in found if wrong]
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
                bad = [o for o in outputs if "Traceback" in o or WARNING.search(o)]
                if bad: problems.append(f"{name}: a traceback or a warning in an output: {bad[0][:200]!r}")
                for href in page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"):
                    if re.match(r"^(https?:|mailto:|data:)", href) or href.startswith("#") and len(href) == 1: continue
                    target, _, fragment = href.partition("#")
                    target = target or name
                    if not (out / target).is_file():
                        problems.append(f"{name}: the link {href!r} leads to no page")
                    elif fragment and f'id="{fragment}"' not in (out / target).read_text():
                        problems.append(f"{name}: the link {href!r} leads to no element #{fragment}")
                page.screenshot(path=shots / f"{name[:-5]}.png", full_page=True)
            browser.close()
    finally:
        server.shutdown()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="folder for the HTML pages and screenshots (emptied first)")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="build only these notebooks (e.g. 04_store.ipynb)")
    parser.add_argument("--no-browser", action="store_true", help="render, but do not check the pages in Chromium")
    args = parser.parse_args(argv)
    out = args.outdir.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    problems = []
    with tempfile.TemporaryDirectory(prefix="digits-docs-") as tmp:
        staging = Path(tmp)
        notebooks = stage(staging, args.only)
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            for name, seconds, error in pool.map(execute, notebooks):
                print(f"executed {name:<28} {seconds:6.1f} s{'  FAILED: ' + error if error else ''}", flush=True)
                if error: problems.append(f"{name}: {error}")
        expected = {}
        for nb in notebooks:
            found, want = output_problems(nb)
            problems += found
            expected[page_name(nb.name)] = {**want, "lesson": nb.name[:2].isdigit()}  # a numbered lesson shows a result
        process(staging)
        import yaml
        order = yaml.safe_load((ROOT / "nbs" / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
        titles = {n: (json.loads((ROOT / "nbs" / n).read_text())["cells"] or [{}]) for n in order}
        pages = [(page_name(n), _title(c)) for n, c in titles.items()]
        render(staging / "_proc", out, pages)
    print(f"rendered {len(list(out.glob('*.html')))} pages into {out}", flush=True)
    if not args.no_browser: problems += check_pages(out, expected)
    for problem in problems: print(f"PROBLEM {problem}")
    print(f"preview: {len(expected)} pages, {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    return 1 if problems else 0


def _title(cells) -> str:
    for c in cells:
        text = "".join(c.get("source", []))
        if c.get("cell_type") == "markdown" and text.startswith("# "): return text.splitlines()[0][2:]
    return "?"


if __name__ == "__main__":
    sys.exit(main())
