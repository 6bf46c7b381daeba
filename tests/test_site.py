"""The documentation site as a reader meets it: built by `tools/build_docs.py`, opened in Debian's Chromium over http
(a server this test starts on 127.0.0.1) and straight from the files (file://).

The site is the one in `_docs/` when it is current for the sources (its build stamp says so), otherwise it is built
there first (`tools/build_docs.py`, which reuses the executed lessons of `_executed/` when they are current). A build
succeeds only with zero warnings from Sphinx under `-W -n`. The checks:

- every page answers, with every link leading to a page of the site, every `#fragment` to an element of its page, every
  picture loaded; no link to the published site that should have been made local (nbdev's absolute links);
- the sidebar of every page lists `nbs/sidebar.yml`'s pages in its order, the current page marked; previous and next
  lead to the neighbours; each page has a contents list;
- the search, typed into the field of a page as a reader would: `kosh` lists the lessons that use Kosh, and
  `read_optdigits` leads to its section, from file:// and over http;
- the lab's and the drawing pad's widgets drawn on their pages, from file:// and over http;
- no page shows `{target=`, `](` or `:::` as text, nor an absolute temporary path, the machine's name or a progress bar;
- the API page lists every name of every module's `__all__`, one line each, linked to its section (a function or a
  class: a section headed by its name, whose signature shows a class as a class);
- nothing any page loads comes from outside the site: every other request is blocked, recorded and reported.

Run it with `pytest tests/test_site.py` (marked `browser`).
"""
from __future__ import annotations

import http.server
import importlib
import inspect
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, need_chromium_and_playwright

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_docs  # noqa: E402

SITE = ROOT / build_docs.CFG.get("doc_path", "_docs")
RAW = ["{target=", "](", ":::"]  # Pandoc attributes, Markdown links and fenced divs that were not rendered
LEAKS = [re.compile(r"(?<![\w.])/(tmp|work|root|home|var/folders)/"), re.compile(r"\d+%\|[^|\n]*\|"),
         re.compile(r"\d+(\.\d+)?it/s\]")]  # an absolute temporary path, a tqdm bar, its rate
HOST = socket.gethostname()
WAIT = 30_000  # milliseconds for a page's widgets or search results to show


@pytest.fixture(scope="module")
def site():
    "The built site in `_docs/`, built first if it is not current; (folder, its build stamp)."
    need_chromium_and_playwright()
    from conftest import lessons_lock, wait_for_install
    wait_for_install()  # in CI, the install test builds it
    with lessons_lock():  # another process may be running the lessons or building the site: wait, then build if need be
        if not build_docs.is_current(SITE): _build()
    return SITE, build_docs.stamp(SITE)


def _build():
    "The README's command for the site, run by this Python (it reuses the executed lessons if they are current)."
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py"), str(SITE)], capture_output=True, text=True)
    print(f"[site] built in {time.monotonic() - start:.0f} s: {done.stdout.strip()}", flush=True)
    if done.returncode: pytest.fail(f"tools/build_docs.py failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


@pytest.fixture(scope="module")
def server(site):
    "A static server of the site on 127.0.0.1 (a free port); its address."
    folder = site[0]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs): super().__init__(*args, directory=str(folder), **kwargs)
        def log_message(self, *args): pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class Browser:
    "A headless Chromium whose pages may load the site only: every other request is blocked and recorded."

    def __init__(self, playwright):
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        self.blocked, self.failed = [], []

    def page(self, base: str):
        "A new page that may load what lies under `base` (the site's address), and data: and blob: addresses."
        context = self.browser.new_context(viewport={"width": 1300, "height": 900})
        context.set_default_timeout(WAIT)

        def only_the_site(route):
            url = route.request.url
            if url.startswith((base, "data:", "blob:")): route.continue_()
            else:
                self.blocked.append(url)
                route.abort()
        context.route("**/*", only_the_site)
        page = context.new_page()
        page.on("requestfailed", lambda r: r.url.startswith(base) and not _search_summary(r) and
                "ERR_ABORTED" not in (r.failure or "") and self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} ({r.status})"))
        return page


def _search_summary(request) -> bool:
    "From file:// a page's own files cannot be fetched (Chromium's rule): Sphinx's search then shows titles only."
    return request.url.startswith("file:") and request.resource_type == "fetch"


@pytest.fixture(scope="module")
def chromium(site):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = Browser(p)
        yield browser
        browser.browser.close()


def bases(site, server) -> dict[str, str]:
    return {"http": server, "file": site[0].resolve().as_uri() + "/"}


def sidebar_pages() -> list[str]:
    "The pages of nbs/sidebar.yml, in its order, named as nbdev names them (`01_data.ipynb` is `data.html`)."
    return [re.sub(r"^\d+[a-zA-Z0-9]*_", "", nb.lower()).rsplit(".", 1)[0] + ".html"
            for nb in build_docs.sidebar_order(ROOT / "nbs")]


# --- every page, link, fragment and picture; the sidebar; previous and next ---------------------------------------

@pytest.fixture(scope="module")
def crawl(site, server, chromium):
    "Every page of the site over http: what it shows and links to, its element ids, its sidebar; keyed by page name."
    page = chromium.page(server)
    found = {}
    for path in sorted(site[0].glob("*.html")):
        response = page.goto(server + path.name, wait_until="load")
        found[path.name] = {"status": response.status if response else None, **page.evaluate("""() => ({
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
            sections: [...document.querySelectorAll('main section[id]')].map(s => [s.id,
                (s.querySelector('h1, h2, h3, h4') || {}).innerText || '', (s.querySelector('pre') || {}).innerText || '']),
            links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
            tables: document.querySelectorAll('.cell_output table').length,
            images: [...document.querySelectorAll('img')].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
            sidebar: [...document.querySelectorAll('.bd-sidebar-primary nav.bd-links a.reference')].map(a => a.getAttribute('href')),
            current: [...document.querySelectorAll('.bd-sidebar-primary nav.bd-links li.current > a')].map(a => a.getAttribute('href')),
            toc: [...document.querySelectorAll('.bd-toc nav a, #pst-page-toc-nav a')].map(a => a.getAttribute('href')),
            prev: [...document.querySelectorAll('.prev-next-area a.left-prev')].map(a => a.getAttribute('href')),
            next: [...document.querySelectorAll('.prev-next-area a.right-next')].map(a => a.getAttribute('href')),
            text: (document.querySelector('main') || document.body).innerText,
        })""")}
    page.context.close()
    return found


def test_every_page_link_fragment_and_image_resolves(site, crawl, chromium):
    problems = [f"{name}: answers {seen['status']}" for name, seen in crawl.items() if seen["status"] != 200]
    for name, seen in crawl.items():
        for href in seen["links"]:
            if re.match(r"^(mailto:|https?://)", href):
                if href.startswith(build_docs.DOC_URL): problems.append(f"{name}: a link to the published site: {href}")
                continue
            target, _, fragment = urljoin(name, href).partition("#")
            target = unquote(target) or name
            if target.endswith("/"): target += "index.html"
            if not (site[0] / target).is_file(): problems.append(f"{name}: the link {href!r} leads to no file")
            elif fragment and target.endswith(".html") and unquote(fragment) not in crawl.get(target, {}).get("ids", []):
                problems.append(f"{name}: the link {href!r} leads to no element #{fragment} of {target}")
        problems += [f"{name}: the picture {src!r} does not load" for src, loaded in seen["images"] if not loaded]
    problems += [f"a request failed: {failed}" for failed in chromium.failed]
    assert not problems, "\n".join(problems)
    assert len(crawl) >= len(sidebar_pages())


def test_the_sidebar_is_sidebar_yml_with_the_page_marked(crawl):
    order = sidebar_pages()
    problems = []
    for name in order:
        seen = crawl[name]
        listed = [urljoin(name, href).partition("#")[0] or name for href in seen["sidebar"]]
        if listed != order: problems.append(f"{name}: the sidebar lists {listed}, sidebar.yml {order}")
        current = [urljoin(name, href).partition("#")[0] or name for href in seen["current"]]
        if current != [name]: problems.append(f"{name}: the sidebar marks {current} as the current page")
        k = order.index(name)
        want_prev, want_next = order[k - 1:k], order[k + 1:k + 2]
        if [urljoin(name, h) for h in seen["prev"]] != want_prev or [urljoin(name, h) for h in seen["next"]] != want_next:
            problems.append(f"{name}: previous {seen['prev']} and next {seen['next']}, expected {want_prev} and {want_next}")
        if name != "index.html" and not seen["toc"]: problems.append(f"{name}: no contents list")
    assert not problems, "\n".join(problems)


def test_no_page_shows_raw_markup_or_a_machines_traces(crawl):
    problems = []
    for name, seen in crawl.items():
        text = seen["text"]
        for raw in RAW:
            if raw in text:
                at = text.index(raw)
                problems.append(f"{name}: shows {raw!r} as text: {text[max(0, at - 60):at + 40]!r}")
        for leak in LEAKS:
            found = leak.search(text)
            if found: problems.append(f"{name}: shows {found[0]!r}: {text[max(0, found.start() - 60):found.end() + 40]!r}")
        if len(HOST) > 3 and re.search(rf"\b{re.escape(HOST)}\b", text):
            problems.append(f"{name}: shows the machine's name {HOST!r}")
    assert not problems, "\n".join(problems)


def test_outputs_are_on_the_pages(crawl):
    "Code cells with their outputs: every numbered lesson shows a figure or a table among its outputs."
    lessons = [name for name in sidebar_pages() if name not in ("index.html", "api.html", "exercises.html")]
    assert [name for name in lessons if not crawl[name]["images"] and not crawl[name]["tables"]] == []
    # where a lesson's prose introduces an exported function, its code is on the page (`#| exports` cells)
    assert "def read_optdigits(path) -> tuple[np.ndarray, np.ndarray]:" in crawl["data.html"]["text"]


# --- the API page --------------------------------------------------------------------------------------------------

def library_names() -> dict[str, list[str]]:
    "Every module of the library with its `__all__`, as nbdev's index lists the modules."
    from digits_tutorial._modidx import d
    modules = [importlib.import_module(m) for m in d["syms"]]
    return {m.__name__: list(m.__all__) for m in modules if getattr(m, "__all__", None)}


def plain(text: str) -> str:
    "Text as typed: no Markdown backticks, straight quotes (Sphinx curls them in prose), single spaces."
    for curly, straight in [("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'), ("`", ""), ("*", "")]:
        text = text.replace(curly, straight)
    return " ".join(text.split())


def test_the_api_page_lists_every_name_linked_to_its_section(crawl, server, chromium):
    page = chromium.page(server)
    page.goto(server + "api.html")
    listed = page.evaluate("""() => [...document.querySelectorAll('main p')].filter(p => p.querySelector('strong a code'))
        .map(p => [p.querySelector('code').innerText, [...p.nextElementSibling.querySelectorAll(':scope > li')]
            .map(li => [li.querySelector('a').innerText, li.querySelector('a').getAttribute('href'), li.innerText])])""")
    page.context.close()
    assert {module: [name for name, _, _ in names] for module, names in listed} == library_names()
    problems = []
    for module_name, names in listed:
        module = importlib.import_module(module_name)
        for name, href, line in names:
            obj = getattr(module, name)
            if "\n" in line.strip() or not re.match(rf"^{re.escape(name)}: \S", line):
                problems.append(f"{module_name}.{name}: not one line 'name: what it is': {line!r}")
            target, _, fragment = href.partition("#")  # a constant defined before a page's first section: the page
            if target not in crawl or fragment and fragment not in crawl[target]["ids"]:
                problems.append(f"{module_name}.{name}: {href} leads to no section")
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)): continue
            doc = (inspect.getdoc(obj) or "").splitlines()[0]
            if plain(doc) not in plain(line):
                problems.append(f"{module_name}.{name}: the line does not give the docstring's first line: {line!r}")
            sections = {id_: (heading, code) for id_, heading, code in crawl[target]["sections"]}
            if sections.get(fragment, ("",))[0].strip() != name:
                problems.append(f"{module_name}.{name}: {href} leads to the section {sections.get(fragment, ('',))[0]!r}")
            kind = "class" if inspect.isclass(obj) else "def"  # its documentation: a section headed by its name
            signatures = [code for heading, code in sections.values() if heading.strip() == name]
            if not any(code.startswith(f"{kind} {name}(") for code in signatures):
                problems.append(f"{module_name}.{name}: no section of {target} gives its signature as '{kind} {name}(...': "
                                f"{[code[:40] for code in signatures]}")
    assert not problems, "\n".join(problems)


# --- search, widgets and what the pages load: from file:// and over http ------------------------------------------

@pytest.mark.parametrize("how", ["file", "http"])
def test_search_finds_kosh_and_read_optdigits(site, server, chromium, crawl, how):
    base = bases(site, server)[how]
    page = chromium.page(base)

    def search(words):  # as a reader: the search field of a page, then Enter
        page.goto(base + "index.html")
        page.locator(".bd-sidebar-primary .search-button-field").first.click()
        field = page.locator("#pst-search-dialog input[name=q]")
        field.fill(words)
        field.press("Enter")
        page.wait_for_url(re.compile(r"search\.html\?q="))
        page.wait_for_function("() => document.querySelector('#search-results .search-summary')?.innerText")  # done
        return page.evaluate("() => [...document.querySelectorAll('#search-results ul.search li a')]"
                             ".map(a => a.getAttribute('href'))")

    found = {href.partition("#")[0].partition("?")[0] for href in search("kosh")}
    mention = {name for name, seen in crawl.items() if re.search(r"\bkosh\b", seen["text"], re.I)}
    lessons = {name for name in sidebar_pages() if name in mention}
    taught = {"store.html", "runs.html", "class.html", "speed.html", "under_the_hood.html"}  # Kosh in their titles or core
    assert taught <= found and found <= mention | {"genindex.html"}, (sorted(found), sorted(mention))
    assert len(found & lessons) >= len(lessons) - 2, sorted(lessons - found)  # a mere mention may rank below the cut

    hits = search("read_optdigits")
    assert "data.html#read-optdigits" in hits or any(h.startswith("data.html#read") for h in hits), hits
    page.locator("#search-results ul.search li a[href^='data.html#read']").first.click()
    page.wait_for_url(re.compile(r"data\.html#read"))
    fragment = urlsplit(page.url).fragment
    heading = page.evaluate(f"() => document.getElementById({json.dumps(fragment)}).querySelector('h3').innerText")
    assert heading.strip().rstrip("#").strip() == "read_optdigits"
    page.context.close()
    assert not chromium.blocked, chromium.blocked


@pytest.mark.parametrize("how", ["file", "http"])
def test_widgets_are_drawn_on_the_lab_and_draw_pages(site, server, chromium, how):
    base = bases(site, server)[how]
    page = chromium.page(base)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for name, drawn in [("lab.html", ".widget-vbox"), ("draw.html", "canvas.digits-draw-canvas")]:
        page.goto(base + name)
        views = page.locator("script[type='application/vnd.jupyter.widget-view+json']").count()
        assert views >= 1, f"{name}: no widget output"
        page.wait_for_selector(drawn, state="attached")
        page.wait_for_function(f"() => document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets, "
                               f".cell_output .jupyter-widgets').length >= {views}")
        if name == "lab.html":  # the lab as the lesson left it: its confusion matrix, cell by cell, and its accuracies
            text = page.locator(".widget-vbox").first.inner_text()
            assert "Accuracy" in text and "true \\ predicted" in text, text[:300]
            assert page.locator(".widget-vbox button").count() >= 100
    page.context.close()
    assert not errors, errors
    assert not chromium.blocked, chromium.blocked


def test_nothing_a_page_loads_comes_from_outside_the_site(site, chromium):
    "Every page from file://, all it loads: nothing blocked (outside the site), nothing missing."
    base = site[0].resolve().as_uri() + "/"
    page = chromium.page(base)
    for path in sorted(site[0].glob("*.html")):
        page.goto(base + path.name, wait_until="load")
        if page.locator("script[type='application/vnd.jupyter.widget-view+json']").count():
            page.wait_for_load_state("networkidle")
    page.context.close()
    assert not chromium.blocked, "requests that leave the site:\n" + "\n".join(chromium.blocked)
    assert not chromium.failed, "requests that failed:\n" + "\n".join(chromium.failed)
