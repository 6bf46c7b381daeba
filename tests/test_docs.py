"""The documentation: README in step with the index page, Quarto and sidebar configuration, show_doc for every export."""
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
LESSONS = sorted(p.name for p in NBS.glob("*.ipynb"))


def cells(notebook, kind="code"):
    nb = json.loads((NBS / notebook).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def test_readme_is_made_from_the_index_page():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_readme.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text().splitlines()
    assert text[0] == "# digits-tutorial" and text[2] == "```bash"
    assert "digits-tutorial run" in text[3] and text[4] == "bash .ci/run" and text[5] == "```"


def test_quarto_configuration_is_nbdev_2s():
    quarto = yaml.safe_load((NBS / "_quarto.yml").read_text())
    assert quarto["project"]["type"] == "website"
    assert set(quarto["metadata-files"]) == {"nbdev.yml", "sidebar.yml"}
    nbdev_yml = yaml.safe_load((NBS / "nbdev.yml").read_text())
    assert nbdev_yml["project"]["output-dir"] == "_docs" and nbdev_yml["website"]["title"] == "digits-tutorial"


def test_sidebar_lists_every_lesson():
    listed = yaml.safe_load((NBS / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    assert listed == ["index.ipynb"] + [n for n in LESSONS if n != "index.ipynb"]  # every lesson, in order


def test_quarto_renders_the_lessons_only():
    quarto = yaml.safe_load((NBS / "_quarto.yml").read_text())
    assert quarto["project"]["render"] == ["*.ipynb"]


def exported_names(notebook):
    "Public top-level functions and classes defined in the exported cells of a lesson; a method added with `@patch` as `Class.name`."
    names = []
    for source in cells(notebook):
        if "#| export" not in source: continue
        tree = ast.parse("\n".join(l for l in source.splitlines() if not l.startswith("#|")))
        for n in tree.body:
            if not isinstance(n, (ast.FunctionDef, ast.ClassDef)) or n.name.startswith("_"): continue
            patched = any(isinstance(d, ast.Name) and d.id == "patch" for d in getattr(n, "decorator_list", []))
            names.append(f"{n.args.args[0].annotation.id}.{n.name}" if patched else n.name)
    return names


def module_of(notebook):
    for source in cells(notebook):
        if source.startswith("#| default_exp"): return source.split()[-1]
    return None


@pytest.mark.parametrize("notebook", [n for n in LESSONS if module_of(n)])
def test_every_export_has_a_docstring_and_show_doc(notebook):
    import importlib
    module = importlib.import_module(f"digits_tutorial.{module_of(notebook)}")
    text = "\n".join(cells(notebook))
    names = exported_names(notebook)
    assert names, f"{notebook} exports nothing"
    for name in names:
        obj = module
        for part in name.split("."): obj = getattr(obj, part)
        assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"
        assert f"show_doc({name})" in text, f"{notebook} has no show_doc({name})"


def test_one_lesson_one_module():
    modules = [module_of(n) for n in LESSONS if module_of(n)]
    assert len(modules) == len(set(modules))
    assert "utils" not in modules


def test_nbdev_export_changes_nothing(tmp_path):
    "On a copy of the project, nbdev_export makes exactly the committed library."
    for name in ("settings.ini", "setup.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(NBS, tmp_path / "nbs", ignore=shutil.ignore_patterns("lesson-output", ".ipynb_checkpoints"))
    shutil.copytree(ROOT / "digits_tutorial", tmp_path / "digits_tutorial", ignore=shutil.ignore_patterns("__pycache__"))
    before = {p.name: p.read_text() for p in (tmp_path / "digits_tutorial").glob("*.py")}
    done = subprocess.run(["nbdev_export"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = {p.name: p.read_text() for p in (tmp_path / "digits_tutorial").glob("*.py")}
    assert after == before


def test_links_in_the_readme_and_the_lessons_resolve_where_they_are_read():
    "README links lead to files of the repository; a lesson's links lead to notebooks beside it (Quarto makes them pages)."
    import re
    problems = []
    for path, base in [(ROOT / "README.md", ROOT)] + [(NBS / n, NBS) for n in LESSONS]:
        text = path.read_text() if path.suffix == ".md" else "\n".join(cells(path.name, "markdown"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^(https?:|mailto:|#)", target): continue
            if not (base / target.split("#")[0]).exists(): problems.append(f"{path.name}: {target}")
    assert not problems, problems


def test_imports_stand_in_cells_of_their_own():
    "nbdev runs every cell holding an import when it builds the docs: such a cell must not also compute anything."
    import re
    problems = []
    for notebook in LESSONS:
        for source in cells(notebook):
            lines = [l for l in source.splitlines() if l.strip() and not l.startswith("#")]
            imports = [l for l in lines if re.match(r"^(import |from \S+ import )", l)]
            if imports and len(imports) < len(lines) and "#| export" not in source:
                problems.append(f"{notebook}: {source.splitlines()[0]!r}")
    assert not problems, problems
