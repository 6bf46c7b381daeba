"""Bad input files: every reader names the file, the 1-based line and what it expected; the command line says so in one line and leaves nothing behind."""
import gzip
import os
import re
import subprocess
import sys
import zlib

import pytest

from digits_tutorial.data import bundled_path, draw_bitmaps, read_bitmaps, read_digits, read_lines, read_optdigits, write_bitmaps

CLI = [sys.executable, "-c", "import sys; from digits_tutorial.cli import main; sys.exit(main())"]

# Six real UCI rows (from the bundled copy of optdigits.tes) and four real digits drawn as 32x32 bitmaps.
CSV_LINES = read_lines(bundled_path())[:6]
N_BITMAPS = 4
HEADER_LINES = 21  # the header write_bitmaps writes, as in the UCI files
FIRST_ROW = HEADER_LINES + 1  # 1-based line of the first bitmap row


def row_line(digit, row):
    "1-based line of bitmap row `row` (1..32) of digit `digit` (1..)."
    return FIRST_ROW + 33 * (digit - 1) + row - 1


def class_line(digit):
    return row_line(digit, 33)


@pytest.fixture(scope="module")
def bitmap_lines(tmp_path_factory):
    X, y = read_optdigits(bundled_path())
    path = write_bitmaps(tmp_path_factory.mktemp("bitmaps") / "good.txt", draw_bitmaps(X[:N_BITMAPS]), y[:N_BITMAPS])
    lines = path.read_text().splitlines()
    assert lines[3] == "entwidth = 32" and len(lines) == HEADER_LINES + 33 * N_BITMAPS  # the layout the cases rely on
    return lines


def write(path, text, compression):
    data = text.encode("latin-1") if isinstance(text, str) else text
    if compression == "gzip":
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def join(lines):
    return "\n".join(lines) + "\n" if lines else ""


def set_token(line, position, value):
    tokens = line.split(",")
    tokens[position - 1] = value
    return ",".join(tokens)


def replace(lines, number, new):
    "Replace 1-based line `number`."
    return lines[:number - 1] + [new] + lines[number:]


# name: (mutation of the good lines, 1-based line or None, what the message must say after "path, line N: ")
CSV_CASES = {
    "too-few-values": (lambda L: replace(L, 3, L[2].rsplit(",", 1)[0]), 3,
                       "expected 65 comma-separated integers (64 pixel counts 0..16, then the class 0..9), found 64 values"),
    "too-many-values": (lambda L: replace(L, 3, L[2] + ",0"), 3, "expected 65 comma-separated integers (64 pixel counts 0..16, then the class 0..9), found 66 values"),
    "blank-line-inside": (lambda L: replace(L, 4, ""), 4, "expected 65 comma-separated integers (64 pixel counts 0..16, then the class 0..9), found 1 values"),
    "not-an-integer": (lambda L: replace(L, 2, set_token(L[1], 5, "x7")), 2, "value 5 is 'x7', expected an integer"),
    "decimal-number": (lambda L: replace(L, 2, set_token(L[1], 7, "3.5")), 2, "value 7 is '3.5', expected an integer"),
    "empty-value": (lambda L: replace(L, 5, set_token(L[4], 12, "")), 5, "value 12 is '', expected an integer"),
    "pixel-above-16": (lambda L: replace(L, 4, set_token(L[3], 10, "17")), 4, "value 10 (a pixel count) is 17, expected 0..16"),
    "pixel-negative": (lambda L: replace(L, 6, set_token(L[5], 1, "-1")), 6, "value 1 (a pixel count) is -1, expected 0..16"),
    "label-10": (lambda L: replace(L, 6, set_token(L[5], 65, "10")), 6, "value 65 (the class) is 10, expected a digit 0..9"),
    "label-negative": (lambda L: replace(L, 1, set_token(L[0], 65, "-3")), 1, "value 65 (the class) is -3, expected a digit 0..9"),
    "text-header-line": (lambda L: [",".join([f"pixel{i}" for i in range(64)] + ["class"])] + L, 1, "value 1 is 'pixel0', expected an integer"),
    "not-ascii": (lambda L: replace(L, 2, L[1] + "\u00e9"), 2, "expected plain text (digits, commas, spaces), found a byte that is not ASCII"),
    "empty-file": (lambda L: [], None, "the file is empty; expected lines of 65 comma-separated integers"),
    "only-blank-lines": (lambda L: ["", "  ", ""], None, "the file is empty; expected lines of 65 comma-separated integers"),
}

BITMAP_CASES = {
    "row-too-short": (lambda L: replace(L, row_line(2, 5), L[row_line(2, 5) - 1][:31]), row_line(2, 5),
                      "expected row 5 of 32 of digit 2: 32 characters '0' or '1', found "),
    "row-too-long": (lambda L: replace(L, row_line(2, 1), L[row_line(2, 1) - 1] + "0"), row_line(2, 1),
                     "expected row 1 of 32 of digit 2: 32 characters '0' or '1', found "),
    # the very first row of the data, right after the header
    "first-row-too-long": (lambda L: replace(L, row_line(1, 1), L[row_line(1, 1) - 1] + "0"), row_line(1, 1),
                           "expected row 1 of 32 of digit 1: 32 characters '0' or '1', found "),
    "first-row-not-0-or-1": (lambda L: replace(L, row_line(1, 1), "x" * 32), row_line(1, 1),
                             "expected row 1 of 32 of digit 1: 32 characters '0' or '1', found 'xxxx"),
    "pixel-not-0-or-1": (lambda L: replace(L, row_line(3, 17), "2" + L[row_line(3, 17) - 1][1:]), row_line(3, 17),
                         "expected row 17 of 32 of digit 3: 32 characters '0' or '1', found '2"),
    "label-10": (lambda L: replace(L, class_line(3), " 10"), class_line(3), "expected the class of digit 3, a digit 0..9, found '10'"),
    "label-not-a-number": (lambda L: replace(L, class_line(1), " x"), class_line(1), "expected the class of digit 1, a digit 0..9, found 'x'"),
    "cut-short-in-a-digit": (lambda L: L[:row_line(2, 10)], row_line(2, 10),
                             "the file ends in the middle of digit 2 after 10 of its 32 rows; expected 32 rows and a class line"),
    "fewer-digits-than-ntot": (lambda L: L[:class_line(3)], 9, f"the header says ntot = {N_BITMAPS}, but the file holds 3 digits"),
    "header-entwidth-16": (lambda L: replace(L, 4, "entwidth = 16"), 4,
                           "expected the header of the 32x32 bitmap format ('entwidth = 32'), found 'entwidth = 16'"),
    "header-entheight-24": (lambda L: replace(L, 5, "entheight = 24"), 5,
                            "expected the header of the 32x32 bitmap format ('entheight = 32'), found 'entheight = 24'"),
    "no-header": (lambda L: L[HEADER_LINES:], 1, "expected the header of the 32x32 bitmap format ('entwidth = 32'), found no entwidth line"),
    "only-a-header": (lambda L: L[:HEADER_LINES], HEADER_LINES + 1, "the file ends after its header; expected 32 rows of 32 characters"),
    "empty-file": (lambda L: [], None, "the file is empty; expected the 32x32 bitmap format"),
}


def expected_prefix(path, line):
    return f"{path}, line {line}: " if line else f"{path}: "


@pytest.mark.parametrize("compression", ["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_csv_reader_names_file_line_and_expectation(tmp_path, case, compression):
    mutate, line, message = CSV_CASES[case]
    path = write(tmp_path / "bad.csv", join(mutate(list(CSV_LINES))), compression)
    with pytest.raises(ValueError) as err:
        read_optdigits(path)
    assert expected_prefix(path, line) + message in str(err.value)
    with pytest.raises(ValueError) as err:  # the format-detecting reader the command line uses says the same
        read_digits(path)
    assert expected_prefix(path, line) + message in str(err.value)


@pytest.mark.parametrize("compression", ["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(BITMAP_CASES))
def test_bitmap_reader_names_file_line_and_expectation(tmp_path, bitmap_lines, case, compression):
    mutate, line, message = BITMAP_CASES[case]
    path = write(tmp_path / "bad-orig.txt", join(mutate(list(bitmap_lines))), compression)
    with pytest.raises(ValueError) as err:
        read_bitmaps(path)
    assert expected_prefix(path, line) + message in str(err.value)
    if case not in ("no-header", "empty-file"):  # without a header a file cannot be told to be of the bitmap format
        with pytest.raises(ValueError) as err:
            read_digits(path)
        assert expected_prefix(path, line) + message in str(err.value)


def test_each_reader_refuses_the_other_format(tmp_path, bitmap_lines):
    bitmaps = write(tmp_path / "orig.txt", join(bitmap_lines), "plain")
    with pytest.raises(ValueError) as err:
        read_optdigits(bitmaps)
    assert f"{bitmaps}, line 1: expected 65 comma-separated integers, found the header of the 32x32 bitmap format" in str(err.value)
    csv = write(tmp_path / "rows.csv", join(CSV_LINES), "gzip")
    with pytest.raises(ValueError) as err:
        read_bitmaps(csv)
    assert f"{csv}, line 1: expected the header of the 32x32 bitmap format ('entwidth = 32'), found no entwidth line" in str(err.value)


def good_text(fmt, bitmap_lines):
    return join(CSV_LINES if fmt == "csv" else bitmap_lines).encode()


@pytest.mark.parametrize("fmt", ["csv", "bitmap"])
def test_gzip_cut_short(tmp_path, bitmap_lines, fmt):
    full = gzip.compress(good_text(fmt, bitmap_lines), mtime=0)
    for keep in (len(full) // 3, len(full) - 4):  # in the middle of the data; only the trailer missing
        path = tmp_path / f"cut-{keep}.gz"
        path.write_bytes(full[:keep])
        # the line where the readable text stops
        line = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(full[:keep]).count(b"\n") + 1
        reader = read_optdigits if fmt == "csv" else read_bitmaps
        with pytest.raises(ValueError) as err:
            reader(path)
        assert f"{path}, line {line}: the gzip stream ends before its end marker (the file is cut short); expected a complete gzip file" in str(err.value)


@pytest.mark.parametrize("where", ["data", "trailer-checksum"])
@pytest.mark.parametrize("fmt", ["csv", "bitmap"])
def test_gzip_corrupt(tmp_path, bitmap_lines, fmt, where):
    text = good_text(fmt, bitmap_lines)
    data = bytearray(gzip.compress(text, mtime=0))
    start = len(data) // 2 if where == "data" else len(data) - 8  # the CRC-32 of the trailer
    for i in range(start, start + 4): data[i] ^= 0xFF
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    reader = read_optdigits if fmt == "csv" else read_bitmaps
    with pytest.raises(ValueError) as err:
        reader(path)
    message = str(err.value)
    found = re.match(re.escape(f"{path}, line ") + r"(\d+): the gzip stream is corrupt; expected a complete gzip file", message)
    assert found, message
    assert 1 <= int(found.group(1)) <= text.count(b"\n") + 1


def test_unix_compress_corrupt(tmp_path):
    path = tmp_path / "optdigits-orig.tra.Z"
    path.write_bytes(b"\x1f\x9d\x90\xff\xff\xff\xff")  # a first code that is not a literal
    with pytest.raises(ValueError) as err:
        read_bitmaps(path)
    assert f"{path}: the Unix-compress (.Z) stream is corrupt" in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'nope.csv'}: no such file")):
        read_optdigits(tmp_path / "nope.csv")


# The command line: a few real processes, started together to save time.
CLI_CASES = [  # (name, file format, compression, case or stream fault)
    ("csv-too-few", "csv", "plain", "too-few-values"),
    ("csv-header", "csv", "gzip", "text-header-line"),
    ("csv-empty", "csv", "plain", "empty-file"),
    ("bitmap-cut-short", "bitmap", "gzip", "cut-short-in-a-digit"),
    ("bitmap-entwidth", "bitmap", "plain", "header-entwidth-16"),
    ("gzip-cut-short", "csv", "gzip-cut", None),
]


def test_command_line_reports_bad_input_in_one_line_and_leaves_nothing(tmp_path, bitmap_lines):
    env = dict(os.environ, DIGITS_TUTORIAL_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")
    runs = []
    for name, fmt, compression, case in CLI_CASES:
        folder = tmp_path / name
        folder.mkdir()
        if compression == "gzip-cut":
            full = gzip.compress(good_text(fmt, bitmap_lines), mtime=0)
            path = folder / "optdigits.tes.gz"
            path.write_bytes(full[:len(full) // 2])
            line = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(full[:len(full) // 2]).count(b"\n") + 1
            expected = f"{path}, line {line}: the gzip stream ends before its end marker"
        else:
            mutate, line, message = (CSV_CASES if fmt == "csv" else BITMAP_CASES)[case]
            path = write(folder / ("bad.csv" if fmt == "csv" else "bad-orig.txt"), join(mutate(list(CSV_LINES if fmt == "csv" else bitmap_lines))), compression)
            expected = expected_prefix(path, line) + message
        out = folder / "out"
        proc = subprocess.Popen(CLI + ["run", "--out", str(out), "--data", str(path), "--quiet"], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs.append((name, proc, expected, out))
    for name, proc, expected, out in runs:
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        assert proc.returncode != 0, name
        assert "Traceback" not in stderr, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, (name, stderr)
        assert expected in lines[0], (name, lines[0])
        assert not (out / "store.sql").exists() and not (out / "images").exists(), name
        assert not out.exists() or not any(out.iterdir()), (name, sorted(p.name for p in out.iterdir()))
