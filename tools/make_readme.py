"""Make README.md from nbs/index.ipynb (what nbdev_readme does with Quarto, which this project cannot assume).

The README is the index page's markdown cells, with links made to work from the top of the repository: images and
lessons under nbs/ (the lessons link to each other's notebooks, which Quarto turns into links between pages). `python tools/make_readme.py` writes README.md;
`python tools/make_readme.py --check` exits 1 if README.md is out of step with the index page.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_text(root: Path = ROOT) -> str:
    "The README that nbs/index.ipynb makes."
    nb = json.loads((root / "nbs" / "index.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    text = "\n\n".join(c.strip() for c in cells) + "\n"
    text = re.sub(r"\]\((images/[^)]+)\)", r"](nbs/\1)", text)
    text = re.sub(r"\]\(([\w-]+\.ipynb(?:#[\w-]+)?)\)", r"](nbs/\1)", text)  # the lessons, where the README is read
    return text + "\n<!-- Made from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n"


def main(argv):
    readme = ROOT / "README.md"
    text = readme_text()
    if "--check" in argv:
        if readme.read_text() != text:
            print("README.md is out of step with nbs/index.ipynb: run python tools/make_readme.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
