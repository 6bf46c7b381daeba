"""Draw a digit, without a browser: drawings become UCI's counts, a model reads them, kept digits join the store.

The real-data test feeds the 1,934 NIST bitmaps of UCI's `optdigits-orig.tra` (in `shared/data/optdigits-orig/`
beside the project; never copied into it), enlarged 8 times as if drawn, through `drawing_to_counts`, and compares
the default model's accuracy on them with its accuracy on UCI's own counts of the same digits. Without that file
the test is skipped, except in CI (`CI` set), where it fails.
"""
import html
import json
import os
from pathlib import Path

import numpy as np
import pytest

from digits_tutorial.data import block_counts, load_digits, read_bitmaps
from digits_tutorial.draw import (WHY_NO_MAP, DrawingPad, DrawingWidget, contribution_map, drawing_to_bitmap,
                                  drawing_to_counts, draw_strokes, keep_drawing, nearest_digits, predict_digit, rgba_to_png)
from digits_tutorial.runs import run_model
from digits_tutorial.split import split_digits
from digits_tutorial.store import build_store, connect_store, read_stored_digits, store_info

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_BITMAPS = ROOT.parent / "shared" / "data" / "optdigits-orig" / "optdigits-orig.tra"
SEVEN = [[(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)]]
SETTINGS = {"fractions": (0.6, 0.2, 0.2), "seed": 0, "stratify": True}


def make_store(folder):
    digits = load_digits("bundled")
    digits.split = split_digits(digits.y, seed=0)
    return connect_store(build_store(digits, folder, split_settings=SETTINGS))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("draw"))


@pytest.fixture(scope="module")
def run(store):
    return run_model(store, record=False)  # the default model, as `digits-tutorial run` and the lab fit it


def enlarged(bitmaps, factor=8, opaque=False):
    "32x32 bitmaps as drawings: each pixel a factor x factor square; black ink on transparent (or white opaque) paper."
    big = np.kron(np.asarray(bitmaps, dtype=np.uint8), np.ones((1, factor, factor), dtype=np.uint8)).astype(bool)
    rgba = np.zeros(big.shape + (4,), dtype=np.uint8)
    if opaque: rgba[...] = 255; rgba[big, :3] = 0
    else: rgba[big, 3] = 255
    return rgba


def error_of(rgba) -> str:
    with pytest.raises(ValueError) as info:
        drawing_to_counts(rgba)
    return str(info.value)


# --- the conversion, on UCI's real bitmaps ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def original_bitmaps():
    if not ORIGINAL_BITMAPS.is_file():
        reason = f"{ORIGINAL_BITMAPS}: UCI's original bitmaps are not here"
        if os.environ.get("CI"): pytest.fail(f"{reason}; CI has shared/ beside the project, so this is a failure, not a skip")
        pytest.skip(reason)
    return read_bitmaps(ORIGINAL_BITMAPS)


def test_real_bitmaps_drawn_8x_are_read_about_as_well_as_their_own_counts(original_bitmaps, run, root):
    bitmaps, labels = original_bitmaps
    assert len(labels) == 1934
    own = block_counts(bitmaps)
    drawn = np.array([drawing_to_counts(d) for d in enlarged(bitmaps)])  # 256x256 drawings, one at a time
    assert drawn.shape == (1934, 64) and drawn.dtype == np.uint8 and drawn.max() <= 16
    right = {name: run.estimator.predict(X.astype(np.float64)) == labels
             for name, X in (("uci_counts", own), ("drawn_8x", drawn))}
    accuracy = {name: float(r.mean()) for name, r in right.items()}
    report = root / "test-artifacts" / "draw" / "real-bitmaps.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"model": run.model, "digits": len(labels), **accuracy}, indent=1))
    print(f"default model on the 1,934 bitmaps of optdigits-orig.tra: UCI's own counts {accuracy['uci_counts']:.1%}, "
          f"drawn 8x and read by drawing_to_counts {accuracy['drawn_8x']:.1%}")
    # the same 1,934 digits, read both ways: how many each way misreads, and how many read right from UCI's counts are
    # misread drawn. Measured with scikit-learn 1.9.1: 108 and 155 misread, 64 lost (17 the other way round); each bound
    # is ten digits above, so that a fault costing a few dozen digits (one more row in every block, a weaker model) fails
    misread = {name: int((~r).sum()) for name, r in right.items()}
    lost = int((right["uci_counts"] & ~right["drawn_8x"]).sum())
    assert misread["uci_counts"] <= 118 and misread["drawn_8x"] <= 165 and lost <= 74, (misread, lost)

    # where NIST's normalisation was the same as ours (longer side 32 rows, box centred), the counts are UCI's exactly
    rows, cols = bitmaps.any(axis=2), bitmaps.any(axis=1)
    left, width = cols.argmax(axis=1), 32 - cols[:, ::-1].argmax(axis=1) - cols.argmax(axis=1)
    same = rows.all(axis=1) & (left == (32 - width) // 2)
    assert same.sum() > 300, same.sum()
    assert (drawn[same] == own[same]).all()


def test_ink_is_alpha_or_dark_on_light(original_bitmaps):
    bitmaps, _ = original_bitmaps
    some = bitmaps[:40]
    transparent = np.array([drawing_to_counts(d) for d in enlarged(some)])
    opaque = np.array([drawing_to_counts(d) for d in enlarged(some, opaque=True)])
    assert (transparent == opaque).all()


def test_a_drawing_is_size_normalised():
    small, large = draw_strokes(SEVEN, size=140, pen=16), draw_strokes(SEVEN, size=560, pen=64)
    bitmap = drawing_to_bitmap(large)
    assert bitmap.any(axis=1).sum() == 32  # the longer side fills the 32 rows
    columns = np.flatnonzero(bitmap.any(axis=0))
    assert abs(columns[0] - (31 - columns[-1])) <= 1  # centred
    assert np.abs(drawing_to_counts(small).astype(int) - drawing_to_counts(large)).max() <= 3


def test_faint_marks_are_not_ink():
    "A browser's canvas leaves pixels of every alpha at a stroke's edges; only those at least half opaque are ink."
    from digits_tutorial.draw import ink_mask
    alphas = np.array([[0, 1, 60, 127, 128, 200, 255]], dtype=np.uint8)
    rgba = np.zeros((1, 7, 4), dtype=np.uint8); rgba[..., 3] = alphas
    assert ink_mask(rgba).tolist() == [[False, False, False, False, True, True, True]]
    seven = draw_strokes(SEVEN)
    smudged = seven.copy()
    smudged[230:270, 230:270, 3] = np.maximum(smudged[230:270, 230:270, 3], 60)  # a faint smudge far from the seven
    assert (drawing_to_counts(smudged) == drawing_to_counts(seven)).all()


# --- what is not a digit ------------------------------------------------------------------------------------------

def test_blank_and_one_dot_drawings_get_clear_messages():
    blank = np.zeros((280, 280, 4), dtype=np.uint8)
    assert error_of(blank).startswith("the drawing is empty: draw a digit")
    assert error_of(np.full((280, 280, 4), 255, dtype=np.uint8)).startswith("the drawing is empty")  # white paper
    pixel = blank.copy(); pixel[140, 140, 3] = 255
    for dot in (pixel, draw_strokes([[(0.5, 0.5)]])):  # one pixel; one touch of the pen
        message = error_of(dot)
        assert message.startswith("the drawing is too small to be a digit (a dot?)") and "fills most of the pad" in message
    blot = draw_strokes([[(0.5, 0.5)]], pen=200)
    assert error_of(blot).startswith("the drawing looks like a dot or a blot, not a digit")
    assert "expected a drawing as an (H, W, 4) uint8 RGBA array" in error_of(np.zeros((28, 28), dtype=np.uint8))


def test_the_widget_shows_the_message_not_a_prediction(store, run):
    view = DrawingWidget(DrawingPad(store, run))
    view.canvas.draw(SEVEN)
    assert "<b>7</b>" in view.prediction.value and "probability of each class" in view.chart.value
    view.canvas.draw([[(0.5, 0.5)]])
    assert "role='alert'" in view.prediction.value and "too small to be a digit" in view.prediction.value
    assert view.chart.value == "" and view.map.value == "" and view.pad.predicted is None
    view.canvas.receive({"type": "strokes", "strokes": [], "down": False})  # Clear, in the browser
    assert "Draw a digit on the pad" in view.prediction.value and view.steps.value == "" and view.neighbours.value == ""
    view.canvas.png = rgba_to_png(draw_strokes(SEVEN))  # a drawing given from Python as an image: read whole at once
    assert "<b>7</b>" in view.prediction.value and view.neighbours.value.count("class='neighbour-row'") == 8
    view.canvas.png = b""
    assert "Draw a digit on the pad" in view.prediction.value and view.steps.value == ""


# --- reading while the pen moves --------------------------------------------------------------------------------

def message(strokes, down=True):
    "A strokes message as the kernel hands it to the canvas widget: what the browser's `model.send` sends."
    content = {"type": "strokes", "strokes": [[[float(x), float(y)] for x, y in s] for s in strokes], "down": down}
    return {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}


def test_the_pad_reads_before_the_pen_is_lifted(store, run):
    view = DrawingWidget(DrawingPad(store, run))
    bar, stem = SEVEN[0][:2], SEVEN[0]
    view.canvas.comm.handle_msg(message([bar]))  # the pen is down: the 7's top bar so far
    assert view.canvas.pen_down and view.pad.predicted is not None and "digits-draw-prediction" in view.prediction.value
    assert "digits-draw-probabilities" in view.chart.value and "digits-draw-map" in view.map.value
    assert view.steps.value == "" and view.neighbours.value == ""  # the slow pictures wait for the pen to rest
    view.canvas.comm.handle_msg(message([stem]))  # the stroke goes on, the pen still down: read again
    assert view.canvas.pen_down and "<b>7</b>" in view.prediction.value and "toward a 7" in view.map.value
    view.canvas.comm.handle_msg(message([stem], down=False))  # lifted
    assert not view.canvas.pen_down and view.steps.value == ""
    view.canvas.receive({"type": "details"})  # resting
    assert "32x32 bitmap" in view.steps.value and view.neighbours.value.count("class='neighbour-row'") == 8
    view.canvas.comm.handle_msg(message([stem, [(0.35, 0.5), (0.6, 0.5)]]))  # a second stroke: the old pictures go
    assert view.steps.value == "" and view.neighbours.value == "" and view.pad.predicted is not None


def test_a_bad_message_from_the_pad_is_one_clear_line(store, run):
    view = DrawingWidget(DrawingPad(store, run))
    for content, said in [({"type": "scribble"}, "of type 'scribble'; expected 'strokes' or 'details'"),
                          ({"type": "strokes", "strokes": [[[0.1]]]}, "strokes that are not lists of [x, y] points")]:
        with pytest.raises(ValueError) as info:
            view.canvas.receive(content)
        assert said in str(info.value) and "\n" not in str(info.value)
    assert "Draw a digit on the pad" in view.prediction.value


# --- the contribution map -----------------------------------------------------------------------------------------

def test_the_map_of_logistic_regression_is_weight_times_count_for_a_real_digit(store, run):
    test = read_stored_digits(store, "test")
    x = test.X[test.y == 4][0].astype(np.float64)  # a real 4 of UCI's test file, not seen by the fit
    scaler, logistic = run.estimator.named_steps["standardscaler"], run.estimator.named_steps["logisticregression"]
    predicted = int(logistic.classes_[np.argmax(logistic.coef_ @ ((x - scaler.mean_) / scaler.scale_) + logistic.intercept_)])
    count = (x - scaler.mean_) / scaler.scale_  # the count the model reads: scaled by the pipeline's StandardScaler
    coefficient = logistic.coef_[predicted] - logistic.coef_.mean(axis=0)  # relative to the mean over classes
    expected = (coefficient * count).reshape(8, 8)
    found = contribution_map(run.estimator, x)
    assert found.shape == (8, 8) and np.allclose(found, expected) and np.abs(expected).max() > 0.5
    assert np.allclose(contribution_map(run.estimator, x, 3), ((logistic.coef_[3] - logistic.coef_.mean(axis=0)) * count).reshape(8, 8))
    scores = run.estimator.decision_function(x.reshape(1, -1))[0]  # the map adds up to the score against the mean class
    assert np.isclose(found.sum() + logistic.intercept_[predicted] - logistic.intercept_.mean(), scores[predicted] - scores.mean())
    # the same model with every class's weight of a block shifted by one amount: the same probabilities, the same map
    import copy
    shifted = copy.deepcopy(run.estimator)
    shifted[-1].coef_ = logistic.coef_ + np.random.default_rng(0).normal(0, 1, size=64)
    assert np.allclose(shifted.predict_proba(x.reshape(1, -1)), run.estimator.predict_proba(x.reshape(1, -1)))
    assert np.allclose(contribution_map(shifted, x), expected)
    pad = DrawingPad(store, run)
    assert pad.draw(draw_strokes(SEVEN)) and pad.predicted == 7
    assert np.allclose(pad.contributions, contribution_map(run.estimator, pad.counts, 7))
    view = DrawingWidget(pad)
    view.canvas.draw(SEVEN)
    assert view.map.value.count("<td ") == 64 and "toward a 7" in view.map.value


@pytest.mark.parametrize("model, params", [("knn", {}), ("svc", {}), ("random_forest", {"n_trees": 10}), ("mlp", {"hidden": 16})])
def test_other_models_have_no_map_and_the_pad_says_why(store, model, params):
    other = run_model(store, model, params, record=False)
    counts = drawing_to_counts(draw_strokes(SEVEN))
    assert contribution_map(other.estimator, counts) is None
    view = DrawingWidget(DrawingPad(store, other))
    view.canvas.draw(SEVEN)
    assert view.pad.predicted is not None and view.pad.contributions is None
    assert "digits-draw-no-map" in view.map.value and html.escape(WHY_NO_MAP[model]) in view.map.value


# --- the model's reading ------------------------------------------------------------------------------------------

def test_predictions_probabilities_and_a_model_without_them(store, run):
    counts = drawing_to_counts(draw_strokes(SEVEN))
    predicted, probabilities = predict_digit(run.estimator, counts)
    assert predicted == 7 == probabilities.argmax() and probabilities.sum() == pytest.approx(1)
    svc = run_model(store, "svc", record=False)
    predicted, probabilities = predict_digit(svc.estimator, counts)
    assert predicted in range(10) and probabilities is None
    view = DrawingWidget(DrawingPad(store, svc))
    view.canvas.draw(SEVEN)
    assert "this model gives no probabilities" in view.chart.value and f"<b>{predicted}</b>" in view.prediction.value


def test_nearest_digits_are_the_runs_training_digits_closest_first(store, run):
    digits = read_stored_digits(store)
    counts = drawing_to_counts(draw_strokes(SEVEN))
    near, distances = nearest_digits(digits, counts, k=5)
    brute = np.sort(np.linalg.norm(digits.X.astype(float) - counts.astype(float), axis=1))[:5]
    assert np.allclose(distances, brute) and (np.diff(distances) >= 0).all()
    pad = DrawingPad(store, run, digits=digits)
    assert pad.draw(draw_strokes(SEVEN))
    train_ids = set(run.ids[run.split == "train"])
    assert len(pad.neighbours) == 8 and set(pad.neighbours.ids) <= train_ids and all(pad.neighbours.source)


def test_nearest_digits_come_from_the_split_of_the_run_not_of_the_store(store):
    "A run of another split than the store's learnt from other digits: the pad shows that run's training digits."
    digits = read_stored_digits(store)
    run = run_model(store, "knn", {"k": 1}, seed=5, fractions=(0.5, 0.25, 0.25), record=False)
    assert run.split_source == "drawn"
    theirs, ours = set(run.ids[run.split == "train"]), set(digits.ids[digits.split == "train"])
    pad = DrawingPad(store, run, digits=digits, k=40)
    assert pad.draw(draw_strokes(SEVEN))
    assert set(pad.train_digits().ids) == theirs != ours
    assert set(pad.neighbours.ids) <= theirs and not set(pad.neighbours.ids) <= ours  # 40 neighbours: some only in the run's


# --- kept digits ------------------------------------------------------------------------------------------------

def test_keeping_a_digit_makes_a_drawn_dataset_and_leaves_the_data_alone(tmp_path):
    import kosh
    store = make_store(tmp_path)
    info, digits = store_info(tmp_path / "store.sql"), read_stored_digits(store)
    run = run_model(store)
    pad = DrawingPad(store, run)
    assert pad.draw(draw_strokes(SEVEN)) and pad.predicted == 7
    dataset = pad.keep(7)
    found = list(store.find(source="drawn"))
    assert [d.id for d in found] == [dataset.id]
    meta = found[0].list_attributes(dictionary=True)
    assert {k: meta[k] for k in ("kind", "source", "split", "label", "index", "line", "run", "predicted")} == {
        "kind": "drawn", "source": "drawn", "split": "drawn", "label": 7, "index": 0, "line": 1, "run": run.id, "predicted": 7}
    uris = list(dataset.get_record()["files"])
    assert len(uris) == 1 and Path(uris[0]).parent == tmp_path / "images" and Path(uris[0]).name.startswith("drawn-")
    plain = kosh.connect(str(tmp_path / "store.sql"), read_only=True)  # plain Kosh finds it too
    assert [d.id for d in plain.find(source="drawn")] == [dataset.id]
    assert (dataset.get("features") == pad.counts).all()  # the digits' own PNG loader reads it
    # the training data, their fingerprint and every run's digits are what they were
    assert store_info(tmp_path / "store.sql") == info
    again = read_stored_digits(store)
    assert len(again) == 1797 and again.fingerprint == digits.fingerprint
    assert len(run_model(store, record=False).ids) == 1797
    assert len(list(store.find(label=7, split="test", ids_only=True))) == ((digits.y == 7) & (digits.split == "test")).sum()
    # the kept digits, read back as a test set of their own
    pad.draw(draw_strokes([[(0.55, 0.15), (0.55, 0.85)]]))
    pad.keep(1)
    mine = read_stored_digits(store, kind="drawn")
    assert list(mine.y) == [7, 1] and list(mine.line) == [1, 2] and set(mine.split) == {"drawn"}


def test_a_kept_digit_needs_a_drawing_and_a_class(store):
    pad = DrawingPad(store)
    with pytest.raises(ValueError, match="^nothing to keep: the drawing is empty"):
        pad.keep(3)
    counts = drawing_to_counts(draw_strokes(SEVEN))
    for label in (10, -1, "7", 7.0, True, None):
        with pytest.raises(ValueError, match="expected a digit 0..9"):
            keep_drawing(store, counts, label)
    with pytest.raises(ValueError, match="expected the 64 counts"):
        keep_drawing(store, np.zeros(63, dtype=np.uint8), 3)
    assert not list(store.find(source="drawn", ids_only=True))


def test_the_widget_keeps_a_digit_with_its_class(tmp_path):
    store = make_store(tmp_path)
    view = DrawingWidget(DrawingPad(store, run_model(store, record=False)))
    view.canvas.draw(SEVEN)
    view.keep_button.click()
    assert "Choose the true class first" in view.message.value and not list(store.find(source="drawn", ids_only=True))
    view.label.value = 7
    view.keep_button.click()
    assert view.message.value.startswith("Kept as a 7") and view.canvas.strokes == [] and view.pad.rgba is None
    assert [d.label for d in store.find(source="drawn")] == [7]
    assert view.kept.value == "1 kept in the store; this model reads 1 of them right (100%)"


# --- in the lab -------------------------------------------------------------------------------------------------

def test_the_labs_pad_reads_with_the_run_on_show(tmp_path):
    from digits_tutorial.widgets import DigitsLab
    store = make_store(tmp_path)
    lab = DigitsLab(store, out_folder=tmp_path)
    lab.drawing.canvas.draw(SEVEN)
    assert lab.drawing.pad.predicted is None and "no model yet" in lab.drawing.prediction.value
    lab.fit_button.click()
    first = lab.state.result
    assert lab.drawing.pad.run is first and lab.drawing.pad.predicted == 7
    lab.model.value = "svc"
    lab.fit_button.click()
    assert lab.drawing.pad.run is lab.state.result and "no probabilities" in lab.drawing.chart.value
    assert lab.wait_recorded(timeout=300)  # the fits' records written: the first is read back from the store
    lab.runs.value = first.id  # an earlier run, read back without its model: the pad loads it from the skops file
    assert lab.state.result.id == first.id and lab.drawing.pad.run.estimator is not None
    assert lab.drawing.pad.predicted == 7 and "probability of each class" in lab.drawing.chart.value


def test_the_widget_works_from_the_thread_jupyterlab_runs_its_callbacks_in(tmp_path):
    "JupyterLab 4.6 sends widget messages to a kernel subshell: a thread other than the one that opened the store."
    import threading
    store = make_store(tmp_path)
    view = DrawingWidget(DrawingPad(store, run_model(store, record=False)))
    failures = []

    def draw_and_keep():  # what the subshell does when the learner draws, then presses Keep
        try:
            view.canvas.draw(SEVEN)
            view.label.value = 7
            view.keep_button.click()
        except BaseException as err:
            failures.append(err)
    subshell = threading.Thread(target=draw_and_keep)
    subshell.start(); subshell.join()
    assert not failures and view.message.value.startswith("Kept as a 7"), (failures, view.message.value)
    assert view.kept.value.startswith("1 kept in the store")
    assert store.is_synchronous() and [d.label for d in store.find(source="drawn")] == [7]


def test_keep_pressed_while_a_drawing_is_being_read_waits_for_it(tmp_path, monkeypatch):
    "JupyterLab runs the canvas's callbacks in a subshell and a button's in the main thread: at the same time, unless they take turns."
    import threading
    import time
    import digits_tutorial.draw as draw
    store = make_store(tmp_path)
    view = DrawingWidget(DrawingPad(store, run_model(store, record=False)))
    view.label.value = 7
    reading, plot = threading.Event(), draw.plot_bitmap_and_counts

    def slow_plot(*args, **kwargs):  # the reading of a drawing, caught while it draws its pictures
        reading.set(); time.sleep(0.5)
        return plot(*args, **kwargs)
    monkeypatch.setattr(draw, "plot_bitmap_and_counts", slow_plot)
    subshell = threading.Thread(target=lambda: setattr(view.canvas, "png", rgba_to_png(draw_strokes(SEVEN))))
    subshell.start()
    assert reading.wait(30)
    view.keep_button.click()  # pressed while the 7 is still being read
    subshell.join()
    assert view.message.value.startswith("Kept as a 7") and [d.label for d in store.find(source="drawn")] == [7]
    assert view.pad.rgba is None and view.steps.value == "" and view.neighbours.value == "" and view.chart.value == ""
