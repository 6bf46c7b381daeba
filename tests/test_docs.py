"""The documentation: README in step with the index page, Quarto and sidebar configuration, show_doc for every export,
the package's own docstring, and the site's build (tools/build_docs.py: its refusals, its converter, warnings as errors;
the built site itself is checked in Chromium by test_site.py)."""
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


@pytest.mark.parametrize("notebook", [n for n in LESSONS if module_of(n) not in (None, "__init__")])
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
    done = subprocess.run([str(Path(sys.executable).with_name("nbdev_export"))], cwd=tmp_path, capture_output=True, text=True)
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


def test_the_package_says_where_to_start_and_comes_from_a_notebook():
    "help(digits_tutorial): a whole run in a script, step by step, and the API page; written by nbdev_export from api.ipynb."
    import pydoc
    import digits_tutorial
    from configparser import ConfigParser
    text = pydoc.render_doc(digits_tutorial, renderer=pydoc.plaintext)
    for said in ("run_tutorial(", "prepare_store(", "run_model(", "api.html", "split", "fit", "evaluate", "record"):
        assert said in text, f"help(digits_tutorial) does not say {said!r}"
    init = (ROOT / "digits_tutorial" / "__init__.py").read_text()
    assert "File to edit: ../nbs/api.ipynb" in init and module_of("api.ipynb") == "__init__"
    settings = ConfigParser(delimiters=["="])
    settings.read(ROOT / "settings.ini")
    assert digits_tutorial.__version__ == settings["DEFAULT"]["version"]


# --- the site's build (tools/build_docs.py) ------------------------------------------------------------------------

def build_docs():
    sys.path.insert(0, str(ROOT / "tools"))
    import build_docs
    return build_docs


def test_the_build_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    "An existing non-empty OUT that is no earlier build: one line, exit 1, nothing touched (nothing built either)."
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert build_docs().main([str(out)]) == 1
    said = capsys.readouterr()
    assert said.err.strip().count("\n") == 0 and "notes" not in said.err and str(out) in said.err, said.err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def _page(*cells):
    return {"cells": [{"cell_type": kind, "metadata": {}, "source": source, **({"outputs": outputs} if kind == "code" else {})}
                      for kind, source, outputs in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_the_converter_makes_show_doc_sections_local_links_and_tags():
    bd = build_docs()
    doc = ("---\n\n[source](https://github.com/x/y.py#L3){target=\"_blank\" style=\"float:right; font-size:smaller\"}\n\n"
           "### Digits\n\n```python\n\ndef Digits(\n    X:ndarray, y:ndarray\n)->None:\n\n\n```\n\n*Digits and where they come from.*")
    nb = _page(("raw", "---\ndescription: The `data`.\noutput-file: data.html\ntitle: The data\n---\n", None),
               ("markdown", "With [[`run_model`](https://digits-tutorial.github.io/digits-tutorial/runs.html#run_model)]"
                            "(07_runs.ipynb) and [`read_lines`](https://digits-tutorial.github.io/digits-tutorial/data.html#read_lines).", None),
               ("code", "#| echo: false\n#| output: asis\nshow_doc(Digits)", [{"output_type": "execute_result", "metadata": {},
                "execution_count": 1, "data": {"text/markdown": doc, "text/plain": "def Digits"}}]),
               ("code", "#| echo: false\nprint(1)", [{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
               ("code", "#| echo: false\nimport os", []), ("code", "#| code-fold: show\nx = 1", []))
    page = bd.convert(nb, {"01_data.ipynb": "data", "07_runs.ipynb": "runs"}, {"Digits"})
    sources = [c["source"] for c in page["cells"]]
    assert sources[0] == "# The data\n\n{.lead}\nThe `data`.\n"
    assert sources[1] == "With [`run_model`](runs.ipynb) and [`read_lines`](data.ipynb#read_lines)."
    assert sources[2] == "### Digits\n\n```python\nclass Digits(X:ndarray, y:ndarray)\n```\n\n*Digits and where they come from.*\n"
    assert page["cells"][3]["metadata"] == {"tags": ["remove-input"]} and sources[3] == "print(1)"
    assert page["cells"][4]["metadata"] == {} and sources[4] == "x = 1" and len(sources) == 5  # no empty cell kept


def test_a_sphinx_warning_stops_the_build(tmp_path):
    "Sphinx runs with warnings as errors: a link to a section that is not there is a problem of one line."
    bd = build_docs()
    src = tmp_path / "pages"
    src.mkdir()
    (src / "index.ipynb").write_text(json.dumps(_page(("markdown", "# Home\n\nSee [nothing](index.ipynb#no-such-section).", None))))
    with pytest.raises(bd.Problem) as raised:
        bd.sphinx(src, tmp_path / "out", tmp_path / "doctrees")
    lines = str(raised.value).splitlines()
    assert len(lines) == 1 and "no-such-section" in lines[0], lines


def test_a_lesson_whose_shown_widget_was_not_saved_fails(tmp_path):
    """The lab's page once had no widgets: on a busy machine nbclient gave up waiting for the cell's last messages (4 s by
    default) and saved the lab's output without the state of its outer box. run_lessons waits longer, and fails the
    lesson, in one line, if a widget it shows has no saved state (here a view of a model no kernel made)."""
    import nbformat
    from conftest import run_lessons_tool
    tool = run_lessons_tool()
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "0" * 32, "version_major": 2, "version_minor": 0}}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.HTML('a widget')"),
                                         nbformat.v4.new_code_cell(f"from IPython.display import display\ndisplay({view!r}, raw=True)")])
    nbformat.write(nb, tmp_path / "lesson.ipynb")
    done = tool.run_lesson(tmp_path / "lesson.ipynb")
    assert done["error"] == f"cell 1: its widget's state was not saved (model {'0' * 32}), so no page can draw it", done
    kept = nbformat.read(tmp_path / "lesson.ipynb", as_version=4)
    assert len(kept.cells[0].outputs) == 1 and tool._unsaved_widget(kept).startswith("cell 1:")  # the first one's is saved
    assert tool.IOPUB_TIMEOUT >= 60


def test_a_failed_lesson_names_its_cell_and_the_line_that_failed(tmp_path):
    """A lesson's bare `assert` raises an AssertionError with no message: the one line run_lessons keeps said only
    "AssertionError:" when CI found lesson 14 failing. It names the cell and the line of the cell that raised."""
    import nbformat
    from conftest import run_lessons_tool
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("y = x + 1\nassert y == 2\nassert y == 3\ny")])
    nbformat.write(nb, tmp_path / "lesson.ipynb")
    done = run_lessons_tool().run_lesson(tmp_path / "lesson.ipynb")
    assert done["error"] == "cell 1, line 3 (assert y == 3): AssertionError", done


def test_what_needs_the_install_test_waits_for_it_and_fails_at_once_if_it_failed(tmp_path, monkeypatch):
    """In CI the install test runs beside the rest of the suite: the tests that read the lessons it executed wait while its
    file says it is under way, go on once the file is gone, and fail at once when it says the install test failed."""
    import threading
    from conftest import INSTALL_PENDING, wait_for_install
    marker = tmp_path / "install-pending"
    monkeypatch.setenv(INSTALL_PENDING, str(marker))
    wait_for_install()  # no file: nothing under way
    marker.write_text("pending\n")
    threading.Timer(0.3, marker.unlink).start()  # the install test ends
    wait_for_install()
    assert not marker.exists(), "returned while the install test was still under way"
    marker.write_text("failed\n")
    with pytest.raises(pytest.fail.Exception, match="failed in test_readme_install.py"):
        wait_for_install()


def test_a_shown_widget_whose_messages_were_lost_is_saved_from_the_kernels_own_state(tmp_path, monkeypatch):
    """CI once saved the lab's lesson without the state of its outer box: nbclient keeps a widget's state from the messages
    it sees, and on a busy machine those of one statement did not reach it. run_lessons keeps, over those, the state of every
    widget alive in the kernel at the end (`Widget.get_manager_state`). Here nbclient sees no widget message at all."""
    import nbformat
    from nbclient import NotebookClient
    from conftest import run_lessons_tool
    tool = run_lessons_tool()
    monkeypatch.setattr(NotebookClient, "handle_comm_msg", lambda self, outs, msg, cell_index: None)  # every one lost
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import ipywidgets\nbox = ipywidgets.VBox([ipywidgets.HTML('shown')])\nbox"),
        nbformat.v4.new_code_cell("box.children[0].value = 'changed after'")])
    nbformat.write(nb, tmp_path / "lesson.ipynb")
    done = tool.run_lesson(tmp_path / "lesson.ipynb")
    assert done["error"] is None, done
    kept = nbformat.read(tmp_path / "lesson.ipynb", as_version=4)
    state = kept.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    shown = kept.cells[0].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    [child] = [state[ref.removeprefix("IPY_MODEL_")] for ref in state[shown]["state"]["children"]]
    assert state[shown]["model_name"] == "VBoxModel" and child["state"]["value"] == "changed after"
    assert len(kept.cells) == 2  # the cell that took the state is not kept


def test_every_fault_of_tools_faults_can_be_put_into_the_library():
    """tools/faults.py (not run by CI) puts each of its faults into the library by an exact text: a change of the library
    that leaves a row's text nowhere, or in two places, makes that row useless, found here rather than when it is run."""
    sys.path.insert(0, str(ROOT / "tools"))
    import faults
    assert [f"{n}: {why}" for n, f in enumerate(faults.FAULTS, 1) if (why := faults.stale(f))] == []
