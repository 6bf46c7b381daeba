"""The lab's logic (LabState) and view (DigitsLab), driven from Python: errors are messages, views never refit."""
import matplotlib.pyplot as plt
import numpy as np
import pytest

from digits_tutorial.data import load_digits
from digits_tutorial.split import split_digits
from digits_tutorial.store import build_store, connect_store
from digits_tutorial.widgets import DigitsLab, LabState


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    digits = load_digits("bundled")
    digits.split = split_digits(digits.y, seed=0)
    return connect_store(build_store(digits, tmp_path_factory.mktemp("lab")))


@pytest.fixture
def lab(store, tmp_path):
    lab = DigitsLab(store, out_folder=tmp_path)
    lab.fit()
    assert lab.state.result is not None
    return lab


def test_fractions_always_add_up_and_move_predictably(store):
    state = LabState(store)
    for split, value in [("train", 0.8), ("test", 0.3), ("validation", 0.05), ("train", 0.9), ("test", 0.99)]:
        before = dict(zip(("train", "validation", "test"), state.fractions))
        state.set_fraction(split, value)
        after = dict(zip(("train", "validation", "test"), state.fractions))
        assert sum(after.values()) == pytest.approx(1) and min(after.values()) >= LabState.MIN_FRACTION - 1e-9
        others = [s for s in after if s != split]
        a, b = (before[s] for s in others)
        if min(after[s] for s in others) > LabState.MIN_FRACTION:  # the other two keep their proportion
            assert after[others[0]] / (after[others[0]] + after[others[1]]) == pytest.approx(a / (a + b), abs=0.02)
    assert sum(state.split_counts().values()) == 1797


def test_views_never_refit(lab, monkeypatch):
    import digits_tutorial.runs as runs
    monkeypatch.setattr(runs, "fit_model", lambda *a, **k: pytest.fail("a view change refitted"))
    fitted = lab.state.result
    lab.view.value = "train"; lab.values.value = True; lab.view.value = "validation"
    cm = fitted.matrices["validation"]
    lab.cells[3][3].click()
    assert lab.state.result is fitted and not lab.state.stale
    assert lab.provenance.value.count("class='digit-row'") == cm[3, 3]


def test_split_and_model_changes_mark_results_out_of_date(lab):
    for change in (lambda: setattr(lab.fraction["test"], "value", 0.3), lambda: setattr(lab.seed, "value", 5),
                   lambda: setattr(lab.model, "value", "random_forest"), lambda: setattr(lab.stratify, "value", False)):
        lab.fit()
        assert not lab.state.stale
        change()
        assert lab.state.stale and "out of date" in lab.status.value


def test_model_controls_follow_the_model(lab):
    for name, settings in [("knn", ["k"]), ("random_forest", ["n_trees", "max_depth"]), ("logistic", ["C"]), ("mlp", ["hidden", "alpha"])]:
        lab.model.value = name
        assert [box.children[0].description for box in lab.params.children] == settings


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.set_seed(-4), "the seed is -4"),
    (lambda s: s.set_param("C", 1e9), "C is 1000000000.0, expected a number from 0.001 to 1000.0"),
    (lambda s: s.set_param("gamma", 1), "logistic has no setting gamma"),
])
def test_bad_settings_are_messages(store, change, expected):
    state = LabState(store)
    state.set_model("logistic")  # the lab starts on the store's latest run, which earlier tests made with other models
    assert state.fit()
    good = state.result
    change(state)
    assert not state.fit() and expected in state.error and state.result is good


def test_a_split_without_every_class_is_a_message(tmp_path):
    digits = load_digits("bundled")[:120]
    digits.split = split_digits(digits.y, seed=0)
    lab = DigitsLab(connect_store(build_store(digits, tmp_path / "small")), out_folder=tmp_path)
    lab.fraction["validation"].value = 0.05
    lab.fit_button.click()
    assert "fewer than the 10 classes" in lab.status.value and "role='alert'" in lab.status.value
    lab.fraction["validation"].value = 0.3
    lab.fraction["test"].value = 0.3
    lab.fit_button.click()
    assert lab.state.error is None and lab.state.result is not None  # the lab kept working


def test_a_fit_that_raises_is_a_message(lab, monkeypatch):
    import digits_tutorial.runs as runs
    def broken(*args, **kwargs): raise RuntimeError("the solver blew up")
    monkeypatch.setattr(runs, "fit_model", broken)
    lab.fit_button.click()
    assert "the solver blew up" in lab.status.value and not lab.fit_button.disabled and not lab.state.busy
    monkeypatch.undo()
    lab.fit_button.click()
    assert lab.state.error is None and "fitted in" in lab.status.value


def test_no_second_fit_while_busy(lab):
    lab.state.busy = True
    assert lab.state.fit() is False
    lab.state.busy = False


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_no_figure_is_left_open(lab):
    "Saving draws the three matrices through pyplot, and the gallery draws on a Figure: neither may leave a figure open."
    before = plt.get_fignums()
    lab.save_button.click()
    assert "Saved" in lab.status.value, lab.status.value
    for i in range(10):
        lab.cells[i][i].click()
        assert bytes(lab.gallery.value).startswith(PNG_SIGNATURE) and lab.gallery.layout.display != "none"
    assert plt.get_fignums() == before


def test_every_control_has_a_description(lab):
    controls = [*lab.fraction.values(), lab.seed, lab.stratify, lab.model, lab.fit_button, lab.view, lab.values, lab.save_button]
    controls += [box.children[0] for box in lab.params.children]
    assert all(c.description for c in controls)
    assert all(cell.tooltip.startswith(f"true {i}, predicted {j}:") for i, row in enumerate(lab.cells) for j, cell in enumerate(row))


def test_save_writes_the_three_pngs(lab, tmp_path):
    lab.save_button.click()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "Test_Data_confusion_matrix.png", "Train_Data_confusion_matrix.png", "Validation_Data_confusion_matrix.png"]


def test_the_lab_opens_on_the_latest_run_of_a_folder_made_by_the_command(tmp_path, cli):
    "The issue's case: `digits-tutorial run` twice, then the lab on that store: the latest run, selected, its settings set."
    out = tmp_path / "results"
    for args in ([], ["--model", "knn", "--param", "k=3", "--train", "0.7", "--validation", "0.15", "--test", "0.15"]):
        done = cli("run", "--out", out, "--quiet", *args)
        assert done.returncode == 0, done.stderr
    store = connect_store(out / "store.sql")
    lab = DigitsLab(store, out_folder=out)
    runs = [run_id for _, run_id in lab.state.runs()]
    assert len(runs) == 2 and lab.state.result.id == runs[-1] and lab.runs.value == runs[-1]
    assert lab.model.value == "knn" and [box.children[0].value for box in lab.params.children] == [3]
    assert [lab.fraction[s].value for s in ("train", "validation", "test")] == [0.7, 0.15, 0.15]
    assert "No results yet" not in lab.status.value and "k-nearest neighbours (k=3), fitted in" in lab.status.value
    assert lab.cells[0][0].description != "" and lab.accuracy.value.count("%") == 3
    assert not lab.state.stale and lab.drawing.pad.run is lab.state.result  # the pad reads with that run's model


def test_the_runs_of_two_learners_in_a_folder_say_whose_they_are(tmp_path):
    "A store of one's own with one learner's runs lists them plainly; once a second learner's runs are in it, each says whose."
    from digits_tutorial.runs import run_model
    digits = load_digits("bundled")[:200]
    digits.split = split_digits(digits.y, seed=0)
    store = connect_store(build_store(digits, tmp_path / "shared"))
    run_model(store, "knn", {"k": 1}, learner="ada")
    [(alone, _)] = LabState(store).runs()
    assert " ada · " not in alone
    run_model(store, "knn", {"k": 3}, learner="grace")
    labels = [label for label, _ in LabState(store).runs()]
    assert len(labels) == 2 and " ada · k-nearest" in labels[0] and " grace · k-nearest" in labels[1], labels


def test_a_store_without_runs_asks_for_a_fit(tmp_path):
    digits = load_digits("bundled")[:200]
    digits.split = split_digits(digits.y, seed=0)
    lab = DigitsLab(connect_store(build_store(digits, tmp_path / "fresh")), out_folder=tmp_path)
    assert lab.state.result is None and lab.runs.value is None and "No results yet" in lab.status.value


def test_open_lab_on_a_folder_opens_that_folder_whatever_the_environment_says(tmp_path, one_run, monkeypatch):
    "A learner of a class (DIGITS_TUTORIAL_STORE set) who opens a folder's lab, as lesson 12 does, gets that folder's runs."
    import shutil
    from digits_tutorial.widgets import open_lab
    out = shutil.copytree(one_run, tmp_path / "results")
    monkeypatch.setenv("DIGITS_TUTORIAL_STORE", "mysql+pymysql://class:secret@127.0.0.1:9/digits_class")  # nothing answers
    lab = open_lab(out)
    assert [label for label, _ in lab.state.runs()] == [label for label, _ in LabState(connect_store(out / "store.sql")).runs()]
    assert len(lab.state.runs()) == 1
