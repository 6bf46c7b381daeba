"""Real UCI data in the original 32x32 bitmap format, from ../shared beside the project (never committed)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

ORIG = Path(__file__).resolve().parents[2] / "shared" / "data" / "optdigits-orig" / "optdigits-orig.tra"
CLASS_COUNTS = [189, 198, 195, 199, 186, 187, 195, 201, 180, 204]  # as ../shared/README.md states
TEST_FLOOR = 0.925  # the default run's test accuracy on these bitmaps is 0.938 (scikit-learn 1.9.1): one point under


@pytest.fixture(autouse=True)
def real_data():
    "Skip where the real bitmaps are absent, except in CI (`CI` set), where a skip would hide that nothing was tested."
    if not ORIG.exists():
        reason = f"the real UCI bitmaps are not here ({ORIG} is absent: it lives in ../shared, beside the checkout)"
        if os.environ.get("CI"): pytest.fail(f"{reason}; in CI this is a failure, not a skip", pytrace=False)
        pytest.skip(reason)


def test_read_bitmaps_reads_the_real_file():
    from digits_tutorial.data import block_counts, read_bitmaps
    bitmaps, labels = read_bitmaps(ORIG)
    assert bitmaps.shape == (1934, 32, 32) and bitmaps.dtype == np.uint8 and set(np.unique(bitmaps)) == {0, 1}
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS
    X = block_counts(bitmaps)
    assert X.shape == (1934, 64) and X.max() == 16 and X.min() == 0


def test_the_bitmap_loader_and_the_reader_agree():
    from digits_tutorial.data import read_digits
    from digits_tutorial.store import connect_store
    import tempfile
    digits = read_digits(ORIG)
    assert digits.line[0] == 22 and digits.line[1] == 22 + 33  # each digit's first bitmap row
    with tempfile.TemporaryDirectory() as folder:
        store = connect_store(Path(folder) / "s.sql")
        ds = store.create(name="optdigits-orig.tra")
        ds.associate(str(ORIG), mime_type="optdigits-orig")
        assert (ds.get("features") == digits.X).all() and (ds.get("labels") == digits.y).all()


def test_a_run_on_the_real_bitmaps(tmp_path, cli):
    done = cli("run", "--out", tmp_path / "out", "--data", ORIG, "--quiet")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["data"]["n_samples"] == 1934 and metrics["accuracy"]["test"] > TEST_FLOOR, metrics["accuracy"]
