"""Downloading the UCI archive from a local HTTP server: good, cut off, corrupt, hostile, wrong and missing archives."""
import gzip
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digits_tutorial.data import (UCI_EXPECTED, DataUnavailable, bundled_path, draw_bitmaps, fetch_uci, load_digits, read_bitmaps,
                                  read_lines, read_optdigits, write_bitmaps)

CLI = [sys.executable, "-c", "import sys; from digits_tutorial.cli import main; sys.exit(main())"]


# ---------------------------------------------------------------------------------------------------------------------
# Unix compress (.Z). Python has no compressor (unlzw3 only decompresses), so here is LZW as ncompress writes it.
def unix_compress(data: bytes, maxbits: int = 16) -> bytes:
    "Unix `compress` (.Z, LZW, block mode) of `data`, laid out as ncompress writes it, so `uncompress`, gzip -d and unlzw3 read it."
    out = bytearray(b"\x1f\x9d" + bytes([0x80 | maxbits]))
    if not data: return bytes(out)
    codes, table, next_code, prefix = [], {bytes([i]): i for i in range(256)}, 257, b""
    for byte in data:
        grown = prefix + bytes([byte])
        if grown in table:
            prefix = grown
            continue
        codes.append(table[prefix])
        if next_code < 1 << maxbits:
            table[grown] = next_code
            next_code += 1
        prefix = bytes([byte])
    codes.append(table[prefix])
    # Pack codes LSB first. The width grows by one bit when the reader's table fills; the stream then skips to the next
    # multiple of `bits` bytes counted from the last width change (a vestige of the original VAX implementation).
    bits, end, acc, nacc, segment = 9, 256, 0, 0, bytearray()
    for k, code in enumerate(codes):
        if k and end >= (1 << bits) - 1 and bits < maxbits:
            if nacc:
                segment.append(acc)
                acc = nacc = 0
            segment += bytes(-len(segment) % bits)
            out += segment
            segment = bytearray()
            bits += 1
        acc |= code << nacc
        nacc += bits
        while nacc >= 8:
            segment.append(acc & 0xFF)
            acc >>= 8
            nacc -= 8
        if k and end < (1 << bits) - 1: end += 1  # the reader makes a table entry from the second code on
    if nacc: segment.append(acc)
    return bytes(out + segment)


def test_unix_compress_round_trip():
    import unlzw3
    rng = np.random.default_rng(0)
    for data in (b"", b"a", b"abababababababab", rng.integers(0, 256, 150_000, dtype=np.uint8).tobytes(),
                 bytes(rng.choice(np.frombuffer(b"01\n", np.uint8), 300_000))):
        assert unlzw3.unlzw(unix_compress(data)) == data


# ---------------------------------------------------------------------------------------------------------------------
# The archives, built from the bundled copy of optdigits.tes.
def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1998, 7, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def rows_text(lines) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def uci(tmp_path_factory):
    "The members of a faithful stand-in for the UCI archive and a collection of bad archives."
    tes = gzip.decompress(bundled_path().read_bytes())
    lines = read_lines(bundled_path())
    X, y = read_optdigits(bundled_path())
    rows, counts = UCI_EXPECTED["optdigits.tes"]
    assert len(y) == rows and tuple(np.bincount(y).tolist()) == counts
    rng = np.random.default_rng(0)
    picks = np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=True) for c, n in enumerate(UCI_EXPECTED["optdigits.tra"][1])])
    rng.shuffle(picks)
    tra_lines = [lines[i] for i in picks]
    assert len(tra_lines) == UCI_EXPECTED["optdigits.tra"][0]
    bitmaps, labels = draw_bitmaps(X[picks[:150]]), y[picks[:150]]
    orig = write_bitmaps(tmp_path_factory.mktemp("orig") / "optdigits-orig.tra", bitmaps, labels).read_bytes()
    members = {"optdigits.names": b"Optical Recognition of Handwritten Digits (a stand-in made by the tests)\n",
               "optdigits.tra": rows_text(tra_lines), "optdigits.tes": tes, "optdigits-orig.tra.Z": unix_compress(orig)}
    good = zip_bytes(members)

    def flipped(data, at, mask=0xFF, n=1):
        data = bytearray(data)
        for i in range(at, at + n): data[i] ^= mask
        return bytes(data)

    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        info = zf.getinfo("optdigits.tra")
    tra_data = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # the member's compressed bytes
    central = good.rindex(b"PK\x01\x02")  # the central directory entry of the last member
    bad = {
        # name: (how the server sends it, the body, words the error must contain)
        "404": ("missing", b"", "404"),
        "cut-off": ("cut", good, "could not download"),
        "not-a-zip": ("ok", b"<html><body>Service temporarily unavailable</body></html>\n", "not a zip file"),
        # bad block type at the start of the deflate data: zlib itself fails
        "corrupt-deflate": ("ok", flipped(good, tra_data, 0x06), "optdigits.tra"),
        # bytes flipped in the middle of the data: the CRC-32 check fails
        "corrupt-crc": ("ok", flipped(good, tra_data + info.compress_size // 2, n=16), "optdigits.tra"),
        # the end-of-central-directory record is damaged
        "corrupt-directory": ("ok", flipped(good, len(good) - 22, n=4), "not a zip file"),
        "truncated-file": ("ok", good[:len(good) * 2 // 3], "not a zip file"),
        "hostile-parent": ("ok", zip_bytes({**members, "../evil.txt": b"evil\n"}), "../evil.txt"),
        "hostile-absolute": ("ok", zip_bytes({**members, "/abs.txt": b"evil\n"}), "/abs.txt"),
        "wrong-count": ("ok", zip_bytes({**members, "optdigits.tra": rows_text(tra_lines[:-40])}), "3783 rows"),
        "wrong-classes": ("ok", zip_bytes({**members, "optdigits.tra": rows_text(tra_lines[:-1] + [lines[int(np.flatnonzero(y == 0)[0])]])}),
                          "expected 3823 rows with (376, 389"),
        "missing-member": ("ok", zip_bytes({k: v for k, v in members.items() if k != "optdigits.tes"}), "no optdigits.tes"),
        "bad-row": ("ok", zip_bytes({**members, "optdigits.tra": rows_text(tra_lines[:99] + ["1,2,3"] + tra_lines[100:])}),
                    "optdigits.tra, line 100: expected 65 comma-separated integers"),
        "corrupt-Z-member": ("ok", zip_bytes({**members, "optdigits-orig.tra.Z": b"\x1f\x9d\x90\xff\xff\xff\xff"}), "Unix-compress"),
    }
    with zipfile.ZipFile(io.BytesIO(bad["hostile-absolute"][1])) as zf:
        assert "/abs.txt" in zf.namelist()
    with zipfile.ZipFile(io.BytesIO(bad["hostile-parent"][1])) as zf:
        assert "../evil.txt" in zf.namelist()
    return {"good": good, "bad": bad, "tra": tra_lines, "bitmaps": bitmaps, "labels": labels}


# ---------------------------------------------------------------------------------------------------------------------
# A local HTTP server whose routes the tests change as they go.
class ArchiveServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.routes, self.requests, self.lock = {}, [], threading.Lock()
        super().__init__(("127.0.0.1", 0), ArchiveHandler)

    def url(self, path): return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def count(self, path):
        with self.lock: return sum(p == path for p in self.requests)


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # no socket operation of the server waits longer

    def log_message(self, *args): pass

    def do_GET(self):
        with self.server.lock:
            self.server.requests.append(self.path)
            mode, body = self.server.routes.get(self.path, ("missing", b""))
        if mode == "missing":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if mode == "cut":  # promise the whole archive, send half of it, hang up
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    srv = ArchiveServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    "Never reach past 127.0.0.1, and never touch the user's cache."
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("DIGITS_TUTORIAL_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.delenv("DIGITS_TUTORIAL_UCI_URL", raising=False)


def trusted_leftovers(cache: Path):
    "Anything in the cache that a later run could take for a good download."
    if not cache.exists(): return []
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.name.startswith("uci-") or p.suffix == ".zip" or ".partial" in p.name)


# ---------------------------------------------------------------------------------------------------------------------
def test_good_archive_is_verified_unpacked_and_cached(server, uci, tmp_path):
    path = "/good/optical+recognition+of+handwritten+digits.zip"
    server.routes[path] = ("ok", uci["good"])
    url, cache = server.url(path), tmp_path / "cache"
    files = fetch_uci(url=url, folder=cache)
    assert sorted(files) == ["optdigits-orig.tra", "optdigits.names", "optdigits.tes", "optdigits.tra"]
    assert all(p.is_file() and p.parent.parent == cache and p.parent.name.startswith("uci-") for p in files.values())
    for name, (rows, counts) in UCI_EXPECTED.items():
        X, y = read_optdigits(files[name])
        assert X.shape == (rows, 64) and tuple(np.bincount(y, minlength=10).tolist()) == counts
    assert files["optdigits.tes"].read_bytes() == gzip.decompress(bundled_path().read_bytes())
    bitmaps, labels = read_bitmaps(files["optdigits-orig.tra"])  # the .Z member, decompressed on unpacking
    assert np.array_equal(bitmaps, uci["bitmaps"]) and np.array_equal(labels, uci["labels"])
    assert server.count(path) == 1
    assert not list(cache.glob("*.partial-*"))

    again = fetch_uci(url=url, folder=cache)  # from the cache: the server sees no second request
    assert again == files and server.count(path) == 1

    digits = load_digits("uci", url=url, cache=cache)
    assert len(digits) == 3823 + 1797 and server.count(path) == 1
    assert set(digits.source) == {"optdigits.tra", "optdigits.tes"}
    tra = digits[digits.source == "optdigits.tra"]
    assert tra.line[99] == 100 and ",".join(map(str, [*tra.X[99], tra.y[99]])) == uci["tra"][99]
    assert len(load_digits("uci:optdigits.tes", url=url, cache=cache)) == 1797
    assert server.count(path) == 1


BAD_CASES = ["404", "cut-off", "not-a-zip", "corrupt-deflate", "corrupt-crc", "corrupt-directory", "truncated-file", "hostile-parent",
             "hostile-absolute", "wrong-count", "wrong-classes", "missing-member", "bad-row", "corrupt-Z-member"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_archive_fails_cleanly_and_is_fetched_again(server, uci, tmp_path, case):
    mode, body, words = uci["bad"][case]
    path = f"/{case}/optical+recognition+of+handwritten+digits.zip"
    if mode != "missing": server.routes[path] = (mode, body)
    url, cache = server.url(path), tmp_path / "cache"
    outside = [tmp_path / "evil.txt", Path("/abs.txt"), cache / "evil.txt", cache / "abs.txt"]
    existed = {p: p.exists() for p in outside}

    with pytest.raises(DataUnavailable) as err:
        fetch_uci(url=url, folder=cache)
    assert isinstance(err.value, OSError)
    message = str(err.value)
    # the address starts every message (and the error quoted may repeat it); it may hold the words itself (`/404/`,
    # `.zip`), so look for them in the rest of the message with the address taken out
    assert message.startswith(f"{url}: ") and words in message[len(url) + 2:].replace(url, ""), message
    assert "\n" not in message and len(message) < 1000, message
    assert trusted_leftovers(cache) == [], trusted_leftovers(cache)
    assert all(p.exists() == existed[p] for p in outside)  # nothing was written outside the cache
    with pytest.raises(DataUnavailable):
        load_digits("uci", url=url, cache=cache)
    assert trusted_leftovers(cache) == []
    assert server.count(path) == 2  # nothing of the bad download was trusted: the second call asked again

    # The server now has the good archive under the same address: the next call downloads it again and succeeds.
    server.routes[path] = ("ok", uci["good"])
    files = fetch_uci(url=url, folder=cache)
    assert server.count(path) == 3
    assert len(read_optdigits(files["optdigits.tra"])[1]) == 3823


def test_auto_falls_back_to_the_bundled_digits_with_one_line(server, tmp_path, capsys, monkeypatch):
    import logging
    import pooch
    # pooch's log handler holds the standard error of the moment pooch was first imported; point it at the one
    # captured now, so that this test sees all that a user would see, whatever ran before it
    for handler in pooch.get_logger().handlers:
        if isinstance(handler, logging.StreamHandler): monkeypatch.setattr(handler, "stream", sys.stderr)
    url = server.url("/nowhere/optdigits.zip")
    digits = load_digits("auto", url=url, cache=tmp_path / "cache")
    assert len(digits) == 1797 and set(digits.source) == {"optdigits.tes"}
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert url in lines[0] and "optdigits.tes" in lines[0] and "scikit-learn" in lines[0] and "1,797 digits" in lines[0]
    assert captured.out == ""
    assert trusted_leftovers(tmp_path / "cache") == []


def test_command_line_without_the_archive(server, tmp_path):
    "`--data uci` with an address that answers 404: status 1, one line; `--data auto`: the bundled digits, one line."
    url = server.url("/cli-missing/optdigits.zip")
    env = dict(os.environ, DIGITS_TUTORIAL_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg", NO_PROXY="127.0.0.1,localhost")
    runs = {data: subprocess.Popen(CLI + ["run", "--out", str(tmp_path / data), "--data", data, "--url", url, "--quiet"],
                                   cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for data in ("uci", "auto")}
    results = {}
    for data, proc in runs.items():
        try:
            results[data] = (*proc.communicate(timeout=90), proc.returncode)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    stdout, stderr, status = results["uci"]
    assert status == 1 and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert url in lines[0] and "404" in lines[0] and lines[0].startswith("digits-tutorial: error: ")
    assert not (tmp_path / "uci").exists()

    stdout, stderr, status = results["auto"]
    assert status == 0, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert url in lines[0] and "1,797 digits" in lines[0]
    assert (tmp_path / "auto" / "store.sql").is_file() and "1,797 digits" in stdout
    assert trusted_leftovers(tmp_path / "cache") == []
