"""The public contract of `digits-tutorial run`: the files it leaves, metrics.json, and the Kosh store agreeing with it."""
import json
import shutil
import subprocess
import sys

import kosh
import numpy as np
import pytest
from PIL import Image

SPLITS = ("train", "validation", "test")
MATRICES = ("Train_Data_confusion_matrix.png", "Validation_Data_confusion_matrix.png", "Test_Data_confusion_matrix.png")


def digits_tutorial(*args, cwd=None):
    "Run the installed command line as a user would; return the completed process."
    exe = shutil.which("digits-tutorial")
    command = [exe] if exe else [sys.executable, "-c", "import sys; from digits_tutorial.cli import main; sys.exit(main())"]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results"
    done = digits_tutorial("run", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out, json.loads((out / "metrics.json").read_text()), done


def test_run_leaves_the_promised_files(default_run):
    out, metrics, done = default_run
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["images", "store.sql", "metrics.json", *MATRICES])
    assert len(list((out / "images").glob("*.png"))) == metrics["data"]["n_samples"] == 1797
    assert not [p for p in out.iterdir() if "partial" in p.name]
    assert done.stdout.strip().splitlines()[-1].startswith("logistic on 1,797 digits: accuracy")


def test_metrics_json_has_the_contract_keys(default_run):
    _, metrics, _ = default_run
    assert {"model", "params", "seed", "data", "split", "accuracy", "confusion_matrix"} <= set(metrics)
    assert metrics["model"] == "logistic" and metrics["seed"] == 0 and metrics["params"] == {"C": 1.0}
    assert {"source", "n_samples"} <= set(metrics["data"])
    for key in ("split", "accuracy", "confusion_matrix"):
        assert set(metrics[key]) == set(SPLITS)


def test_counts_matrices_and_store_agree(default_run):
    out, metrics, _ = default_run
    store = kosh.connect(str(out / "store.sql"), read_only=True)
    assert len(list(store.find(ids_only=True))) == metrics["data"]["n_samples"]
    for split in SPLITS:
        cm = np.array(metrics["confusion_matrix"][split])
        assert cm.shape == (10, 10) and cm.sum() == metrics["split"][split]
        assert metrics["accuracy"][split] == pytest.approx(np.trace(cm) / cm.sum())
        for label in range(10):  # each row of a matrix is the store's digits of that class in that split
            assert cm[label].sum() == len(list(store.find(label=label, split=split, ids_only=True)))
    assert sum(metrics["split"].values()) == metrics["data"]["n_samples"]
    assert metrics["accuracy"]["test"] > 0.93


def test_every_digit_has_its_metadata_and_png(default_run):
    out, _, _ = default_run
    store = kosh.connect(str(out / "store.sql"), read_only=True)
    datasets = list(store.find(label=3, split="test"))
    assert datasets
    for ds in datasets[:10]:
        assert isinstance(ds.label, int) and ds.split == "test" and ds.source == "optdigits.tes" and isinstance(ds.index, int)
        [uri] = [u for u, f in ds.get_record()["files"].items() if f["mimetype"] == "png"]
        assert uri.startswith(str((out / "images").resolve()))
        assert ds.get("image").shape == (8, 8)  # through Kosh's own loader, no digits_tutorial import needed


def test_confusion_matrix_pngs_are_readable(default_run):
    out, _, _ = default_run
    for name in MATRICES:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) >= 400


def test_test_data_scores_on_the_separate_file(tmp_path):
    from digits_tutorial.data import bundled_path
    import gzip
    rows = gzip.decompress(bundled_path().read_bytes()).decode().splitlines()
    (tmp_path / "first.tra").write_text("\n".join(rows[:1000]) + "\n")
    (tmp_path / "second.tes").write_text("\n".join(rows[1000:]) + "\n")
    out = tmp_path / "protocol"
    done = digits_tutorial("run", "--out", str(out), "--data", str(tmp_path / "first.tra"), "--test-data", str(tmp_path / "second.tes"), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["test"] == 797 and metrics["split"]["train"] + metrics["split"]["validation"] == 1000
    assert metrics["data"]["n_samples"] == 1797
    store = kosh.connect(str(out / "store.sql"), read_only=True)
    assert {ds.source for ds in store.find(split="test")} == {"second.tes"}
    assert metrics["accuracy"]["test"] > 0.9


def test_default_model_on_bundled_data_scored_on_a_bitmap_file(tmp_path):
    "The default model trained on the bundled data, scored on a separate file in the bitmap format."
    from digits_tutorial.data import draw_bitmaps, load_digits, write_bitmaps
    digits = load_digits("bundled")
    test_file = write_bitmaps(tmp_path / "other-orig.tes", draw_bitmaps(digits.X[:300]), digits.y[:300])
    done = digits_tutorial("run", "--out", str(tmp_path / "out"), "--test-data", str(test_file), "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["split"]["test"] == 300 and metrics["data"]["n_samples"] == 1797 + 300


def test_other_models_and_options(tmp_path):
    done = digits_tutorial("run", "--out", str(tmp_path / "knn"), "--model", "knn", "--param", "k=3",
                           "--train", "0.5", "--validation", "0.25", "--test", "0.25", "--seed", "7", "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "knn" / "metrics.json").read_text())
    assert metrics["model"] == "knn" and metrics["params"] == {"k": 3} and metrics["seed"] == 7
    assert metrics["split"]["test"] == round(0.25 * 1797)


@pytest.mark.parametrize("args, expected", [
    (["--model", "nope"], "invalid choice: 'nope'"),
    (["--param", "k=0", "--model", "knn"], "k is 0, expected a whole number from 1 to 50"),
    (["--train", "0.5"], "the fractions add up to 0.9, expected 1"),
    (["--data", "/no/such/file.tra"], "/no/such/file.tra: no such file"),
])
def test_bad_options_fail_with_one_line(tmp_path, args, expected):
    out = tmp_path / "out"
    done = digits_tutorial("run", "--out", str(out), *args)
    assert done.returncode != 0 and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not (out / "store.sql").exists() and not (out / "images").exists()


def test_progress_is_shown_for_long_steps(tmp_path):
    done = digits_tutorial("run", "--out", str(tmp_path / "out"))
    assert done.returncode == 0
    assert "writing 1,797 images and the Kosh store" in done.stderr and "fitting Logistic regression" in done.stderr
