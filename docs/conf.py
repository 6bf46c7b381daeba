"""Sphinx configuration of the documentation site, built by `python tools/build_docs.py` (read it first).

The pages are the lessons, executed once by `tools/run_lessons.py`, processed by nbdev (`proc_nbs`) and turned into
MyST-NB notebooks by `tools/build_docs.py`, which calls `sphinx-build -W -n -c docs STAGED_PAGES OUT`: this folder holds
the configuration and the static files, the staged folder the pages. Nothing is executed here (`nb_execution_mode`).
Every file a page loads is served from the site itself: the theme's own files, and the widget manager that shows the
lab's and the drawing pad's widgets from their saved state (`widgets_offline.py`, fetched with `npm pack` at build time).
"""
import sys
from configparser import ConfigParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
settings = ConfigParser(delimiters=["="])
settings.read(HERE.parent / "settings.ini", encoding="utf-8")
cfg = settings["DEFAULT"]

project = cfg["title"]
author = cfg["author"]
copyright = cfg["copyright"]
release = version = cfg["version"]

extensions = ["myst_nb", "widgets_offline"]
root_doc = "index"
exclude_patterns = ["**/.ipynb_checkpoints"]

# MyST-NB: the notebooks arrive executed, with their outputs; the engine only renders them.
nb_execution_mode = "off"
nb_merge_streams = True        # one block per cell for what a cell prints, as in JupyterLab
myst_enable_extensions = ["attrs_block"]
myst_heading_anchors = 4       # links to a heading (`page.ipynb#section`) are resolved, and checked under -n

myst_heading_slug_func = "anchors.pandoc_slug"  # anchors as Pandoc (Quarto, nbdev) makes them

# The widget manager and require.js from the site's own _static/widgets/ (widgets_offline.py), never from a CDN.
nb_ipywidgets_js = {
    "widgets/require.js": {},
    "widgets/config.js": {},
    "widgets/html-manager/embed-amd.js": {"data-jupyter-widgets-cdn": "_static/widgets/not-on-a-cdn/"},
}

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_last_updated_fmt = None
html_copy_source = False      # no copies of the notebooks beside the pages
html_show_sourcelink = False
html_theme_options = {
    "home_page_in_toc": True,       # the sidebar lists every page of sidebar.yml, the home page first
    "show_toc_level": 2,            # a page's contents list shows its sections and each documented name
    "show_navbar_depth": 1,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
    "show_prev_next": True,
    "navbar_persistent": [],        # one search field, in the sidebar (the header would repeat it)
}
