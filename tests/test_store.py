"""The fast store path makes what Kosh's own `create` and `associate` make, and stays a plain Kosh store."""
import json
import sqlite3
from pathlib import Path

import kosh
import numpy as np
import pytest

from digits_tutorial.data import load_digits
from digits_tutorial.images import grey_to_counts, save_digit_images
from digits_tutorial.split import split_digits
from digits_tutorial.store import build_store, connect_store, read_stored_digits, store_info, StoreMismatch

VOLATILE = {"creation_date", "last_modified_date", "creator"}


@pytest.fixture(scope="module")
def digits():
    d = load_digits("bundled")[:60]
    d.split = split_digits(d.y, (0.5, 0.25, 0.25), seed=0)
    return d


@pytest.fixture(scope="module")
def both_stores(digits, tmp_path_factory):
    "The same digits stored by the fast path and by Kosh's own calls, one dataset at a time."
    folder = tmp_path_factory.mktemp("stores")
    fast = build_store(digits, folder / "fast")
    slow_path = folder / "slow" / "store.sql"
    slow_path.parent.mkdir()
    slow = kosh.connect(str(slow_path))
    for path, i in zip(save_digit_images(digits, folder / "slow" / "images"), range(len(digits))):
        ds = slow.create(name=path.stem, metadata={"kind": "digit", "label": int(digits.y[i]), "split": str(digits.split[i]), "source": str(digits.source[i]),
                                                   "index": int(digits.index[i]), "line": int(digits.line[i])})
        ds.associate(str(path), mime_type="png")
    slow.close()
    return fast, slow_path


def records(path, kind):
    with sqlite3.connect(path) as db:
        return [json.loads(raw) for (raw,) in db.execute("SELECT raw FROM Record WHERE type = ?", (kind,))]


def bookkeeping(records):
    "The names of Kosh's bookkeeping entries, with each record's own file path written as <uri>."
    names = set()
    for r in records:
        uris = list(r["files"]) or [r["data"].get("uri", {}).get("value", "")]
        for key in r["user_defined"]["kosh_information"]:
            for uri in uris: key = key.replace(uri, "<uri>") if uri else key
            names.add(key)
    return names


def file_values(path):
    """Every file record's values, and every dataset's `files` entry, by dataset name: each path written relative to
    the store's folder, each Kosh id as the name or path of the record it points to, dates left out."""
    folder = str(Path(path).resolve().parent) + "/"
    datasets, files = records(path, "dataset"), records(path, "file")
    name_of = {r["id"]: r["data"]["name"]["value"] for r in datasets}
    uri_of = {r["id"]: r["data"]["uri"]["value"] for r in files}
    assert all(uri.startswith(folder) for uri in uri_of.values()), (folder, list(uri_of.values())[:3])
    here = lambda uri: uri.replace(folder, "<store>/", 1)
    values = {}
    for r in files:
        data = {k: v["value"] for k, v in r["data"].items() if k not in VOLATILE}
        data["uri"] = here(data["uri"])
        data["associated"] = [name_of.get(i, f"no dataset {i}") for i in data["associated"]]
        for name in data["associated"]: values.setdefault(name, []).append(("file", data))
    for r in datasets:
        entries = {here(uri): {**f, "kosh_id": here(uri_of[f["kosh_id"]])} for uri, f in r["files"].items()}
        values.setdefault(r["data"]["name"]["value"], []).append(("dataset files", entries))
    return values


def table_shape(path):
    "Which tables hold which data names, for datasets and files: what Sina's queries see."
    with sqlite3.connect(path) as db:
        shape = {}
        for table in ("ScalarData", "StringData", "ListStringDataEntry", "Document"):
            column = "uri" if table == "Document" else "name"
            rows = db.execute(f'SELECT r.type, t."{column}" FROM "{table}" t JOIN Record r ON r.id = t.id WHERE r.type IN ("dataset", "file")').fetchall()
            shape[table] = sorted({(kind, "<uri>" if table == "Document" else name) for kind, name in rows})
        return shape


def test_same_records_as_kosh_makes(both_stores):
    fast, slow = both_stores
    for kind in ("dataset", "file"):
        a, b = records(fast, kind), records(slow, kind)
        assert len(a) == len(b) == 60
        assert {k for r in a for k in r["data"]} - VOLATILE == {k for r in b for k in r["data"]} - VOLATILE
        assert bookkeeping(a) == bookkeeping(b)
    fast_ds = sorted(records(fast, "dataset"), key=lambda r: r["data"]["index"]["value"])
    slow_ds = sorted(records(slow, "dataset"), key=lambda r: r["data"]["index"]["value"])
    for a, b in zip(fast_ds, slow_ds):
        assert {k: v for k, v in a["data"].items() if k not in VOLATILE} == {k: v for k, v in b["data"].items() if k not in VOLATILE}
        assert [f["mimetype"] for f in a["files"].values()] == [f["mimetype"] for f in b["files"].values()] == ["png"]
    fast_files, slow_files = file_values(fast), file_values(slow)
    assert len(fast_files) == 60 and all(len(v) == 2 for v in fast_files.values())  # one file and one entry each
    assert fast_files == slow_files
    assert table_shape(fast) == table_shape(slow)


def test_same_answers_to_queries(both_stores, digits):
    fast, slow = (kosh.connect(str(p), read_only=True) for p in both_stores)
    for query in ({"label": 3}, {"split": "test"}, {"label": 3, "split": "test"}, {"source": "optdigits.tes"}):
        names = lambda store: sorted(ds.name for ds in store.find(**query))
        assert names(fast) == names(slow) and len(names(fast)) == sum(np.all([getattr(digits, "y" if k == "label" else k) == v for k, v in query.items()], axis=0))


def test_plain_kosh_reads_the_fast_store(both_stores, digits):
    store = kosh.connect(str(both_stores[0]), read_only=True)
    found = list(store.find(split="validation"))
    assert len(found) == (digits.split == "validation").sum() > 0
    for ds in found:
        assert (grey_to_counts(ds.get("image")).reshape(-1) == digits.X[ds.index]).all()
    frame = store.to_dataframe(["label", "split", "line"], split="train")
    assert len(frame) == (digits.split == "train").sum()


def test_fast_read_equals_kosh_get(both_stores, digits):
    store = connect_store(both_stores[0], read_only=True)
    stored = read_stored_digits(store)
    assert (stored.X == digits.X).all() and (stored.y == digits.y).all() and (stored.split == digits.split).all()
    for i in (0, 17, 59):
        ds = next(store.find(id_pool=stored.ids[i]))
        assert (ds.get("features") == stored.X[i]).all()


def test_the_store_says_what_it_holds(both_stores, digits):
    info = store_info(both_stores[0])
    assert info["fingerprint"] == digits.fingerprint and info["n_digits"] == 60
    store = kosh.connect(str(both_stores[0]), read_only=True)
    assert [e.name for e in store.find_ensembles()] == ["digits-tutorial"]
    with pytest.raises(StoreMismatch, match="not one made by digits-tutorial"):
        store_info(both_stores[1])


def test_a_failed_insert_leaves_no_store(digits, tmp_path, monkeypatch):
    import digits_tutorial.store as store_module
    def broken(*args, **kwargs): raise RuntimeError("disk full")
    monkeypatch.setattr(store_module, "insert_records", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_store(digits, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # nor a lock file
