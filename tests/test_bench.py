"""The benchmark (`digits_tutorial.bench`): what it prints is what it returns, its verdicts follow from its figures, and
every target holds. A target is never an absolute time: each is a ratio to a baseline measured beside it in the same run
(the yardstick process, Pillow, the PNG writing, the obvious code), so a busy machine slows both sides alike."""
import io
import json

import pytest

from digits_tutorial.bench import TARGETS, judge, run_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    printed = io.StringIO()
    figures = run_benchmark(folder=tmp_path_factory.mktemp("bench"), file=printed)  # the defaults, as `digits-tutorial bench`
    return figures, printed.getvalue().splitlines()


def test_the_json_line_is_what_it_returns(bench):
    figures, lines = bench
    assert json.loads(lines[-1]) == json.loads(json.dumps(figures))
    assert figures["n_digits"] == 5620 and figures["repeats"] == 3 and "5,620 digits" in figures["data"]


def test_the_verdicts_follow_from_the_figures_and_the_table_says_them(bench):
    figures, lines = bench
    assert (figures["ratios"], figures["targets_met"]) == judge(figures)
    for name in TARGETS:
        assert any(line.startswith(f"  {'met   ' if figures['targets_met'][name] else 'MISSED'} {name} ") for line in lines), name


def test_a_figure_over_its_limit_is_missed(bench):
    "The judge can say no: each figure pushed just past its limit is called missed."
    figures, _ = bench
    for name, (key, base, limit, _) in TARGETS.items():
        worse = dict(figures)
        if key == "fresh_seconds" and base == "obvious_seconds": worse["obvious_seconds"] = figures["fresh_seconds"] / limit * 0.99
        else: worse[key] = (figures[base] if base else 1.0) * limit * 1.01
        assert judge(worse)[1][name] is False, name


def test_the_main_job_says_where_its_time_goes(bench):
    figures, lines = bench
    for name in ("fresh", "rerun"):
        phases = figures[f"{name}_phases"]
        assert {"imports", "data", "store", "fit", "record"} <= set(phases), phases
        assert sum(phases.values()) > 0.3 * figures[f"{name}_seconds"]
    assert figures["obvious_extrapolated"] and figures["obvious_sample"] == 50


def test_every_target_is_met(bench):
    figures, lines = bench
    missed = {name: f"{figures['ratios'][name]:.3g} > {TARGETS[name][2]:.3g}" for name, met in figures["targets_met"].items() if not met}
    assert not missed, ("\n".join(lines[:-1]), missed)
