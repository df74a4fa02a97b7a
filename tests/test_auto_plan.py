"""`seqcast-train auto`'s plan without training: the grid from the data's interval, the order,
the time predicted for each candidate, the budget loop (an injected clock and trainer), the pick
by validation and what the closing lines say."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pandas")  # grid.py plans with the data preparation (no TensorFlow)

from seqcast.edge.timegrid import Grid  # noqa: E402
from seqcast.train.auto_report import budget_lines, format_auto  # noqa: E402
from seqcast.train.compare import SweepRow, decide  # noqa: E402
from seqcast.train.grid import (  # noqa: E402
    Candidate,
    build_grid,
    check_budget,
    default_seq_lens,
    order,
    predict_seconds,
    run_budget,
    work,
)
from seqcast.train.options import DataError  # noqa: E402

pytestmark = pytest.mark.train
WIDTH = 7  # vic_elec: Demand + three calendar sin/cos pairs


def by_work(c: Candidate) -> float:
    return work(c, WIDTH)


def row(c: Candidate, val: float, *, seconds: float = 10.0, train_s: float = 8.0,
        epochs: int = 4, cost: float = 5.0, test: float | None = None) -> SweepRow:  # fmt: skip
    return SweepRow(
        seq_len=c.seq_len, val_mae_window=val + 0.1, val_mae_stream=val,
        val_mae_persistence=50.0, val_mae_seasonal_naive=40.0,
        test_mae=val if test is None else test, train_seconds=train_s, bundle_bytes=10_000,
        window_us=cost * 2, stream_us=cost, bundle=f"{c.slug}.seqcast", cell=c.cell,
        units=c.units, epochs_run=epochs, seconds=seconds,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("grid", "lens"),
    [
        (Grid.fixed(1800), (48, 96)),  # half-hourly: a day and two
        (Grid.fixed(3600), (24, 48)),
        (Grid.fixed(86400), (7, 14)),  # daily: a week and two
        (Grid.fixed(300), (96, 192)),  # a 5-minute day is 288 steps: capped
        (Grid.months(1, "start"), (12, 24)),  # monthly: a year and two
        (Grid.fixed(1000), (12, 24)),  # no whole number of steps per day or week: no season
    ],
)
def test_default_seq_lens_follow_the_season_of_the_interval(grid: Grid, lens: tuple[int, ...]):
    assert default_seq_lens(grid) == lens


def test_the_grid_is_every_combination_of_single_layers():
    cands = build_grid([96, 48, 48], ["lstm", "gru"], [64, 32])
    assert len(cands) == 8 and len(set(cands)) == 8
    assert {c.units for c in cands} == {(32,), (64,)}
    assert Candidate(48, "gru", (32,)) in cands and Candidate(96, "lstm", (64,)) in cands


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([0, 48], ["gru"], [32]), "--seq-lens: need lengths >= 1"),
        (([48], ["rnn"], [32]), "--cells: choose from gru, lstm, got ['rnn']"),
        (([48], [], [32]), "--cells"),
        (([48], ["gru"], [0]), "--units: need widths >= 1"),
    ],
)
def test_a_bad_grid_is_one_line_naming_the_option(args, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_grid(*args)


@pytest.mark.parametrize("minutes", [0.0, -1.0, float("nan"), float("inf")])
def test_a_budget_must_be_a_positive_number_of_minutes(minutes):
    with pytest.raises(DataError, match="--budget"):
        check_budget(minutes)


def test_the_order_starts_cheapest_and_moves_one_choice_at_a_time():
    plan = order(build_grid([48, 96], ["gru", "lstm"], [32, 64]), WIDTH)
    assert plan[0] == Candidate(48, "gru", (32,))
    one_change = {Candidate(96, "gru", (32,)), Candidate(48, "lstm", (32,)),
                  Candidate(48, "gru", (64,))}  # fmt: skip
    assert set(plan[1:4]) == one_change
    assert plan[-1] == Candidate(96, "lstm", (64,))
    for a, b in zip(plan[1:3], plan[2:4], strict=True):  # cheaper first within a tier
        assert work(a, WIDTH) <= work(b, WIDTH)


def test_the_trainers_own_architecture_goes_first_when_the_grid_holds_it():
    grid = build_grid([48, 96], ["gru", "lstm"], [32, 64])
    plan = order(grid, WIDTH, anchor=Candidate(48, "lstm", (64,)))
    assert plan[0] == Candidate(48, "lstm", (64,))
    one_change = {Candidate(96, "lstm", (64,)), Candidate(48, "gru", (64,)),
                  Candidate(48, "lstm", (32,))}  # fmt: skip
    assert set(plan[1:4]) == one_change
    assert plan[-1] == Candidate(96, "gru", (32,))
    assert sorted(plan, key=str) == sorted(grid, key=str)
    # an anchor outside the grid changes nothing: cheapest first
    assert order(grid, WIDTH, anchor=Candidate(24, "lstm", (64,))) == order(grid, WIDTH)


def test_plan_for_starts_with_fits_defaults(tmp_path):
    from seqcast.train.grid import Space, plan_for
    from seqcast.train.options import FitOptions
    from synth import write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=600))
    o = FitOptions(data=csv, features=["load", "temp"], targets=["load"], horizon=3)
    plan, _ = plan_for(o, Space(seq_lens=[6, 12], units=[8, 64]))
    assert plan[0] == Candidate(6, "lstm", (64,))


def test_work_grows_with_units_and_gates_and_with_seq_len_only_in_window_mode():
    gru32, lstm32, gru64 = (Candidate(48, "gru", (32,)), Candidate(48, "lstm", (32,)),
                            Candidate(48, "gru", (64,)))  # fmt: skip
    assert work(gru32, WIDTH) < work(lstm32, WIDTH) < work(gru64, WIDTH)
    longer = Candidate(96, "gru", (32,))
    assert work(longer, WIDTH) == work(gru32, WIDTH)
    assert work(longer, WIDTH, window_mode=True) == 2 * work(gru32, WIDTH, window_mode=True)


def test_the_prediction_scales_the_nearest_trained_candidate_by_cost():
    gru32, gru64 = Candidate(48, "gru", (32,)), Candidate(48, "gru", (64,))
    assert predict_seconds(gru32, [], by_work) is None  # nothing to predict from: it runs
    done = [row(gru32, 1.0, seconds=30.0, train_s=20.0, epochs=10)]
    ratio = work(gru64, WIDTH) / work(gru32, WIDTH)
    assert predict_seconds(gru64, done, by_work) == pytest.approx(10.0 + 10 * 2.0 * ratio)
    assert predict_seconds(Candidate(96, "gru", (32,)), done, by_work) == pytest.approx(30.0)
    measured = {gru32.units: 1.0, gru64.units: 1.5}.__getitem__
    assert predict_seconds(gru64, done, lambda c: measured(c.units)) == pytest.approx(40.0)


class FakeClock:
    """Seconds that pass only when the fake trainer says a candidate took them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_candidate_predicted_to_overrun_is_skipped_and_a_cheaper_later_one_still_runs():
    clock = FakeClock()
    a, b, c = Candidate(12, "gru", (8,)), Candidate(12, "gru", (64,)), Candidate(24, "gru", (8,))
    took = {a: 40.0, c: 40.0}

    def train(cand: Candidate, n: int) -> SweepRow:
        clock.now += took[cand]  # b would fail here: it must not be trained
        return row(cand, 1.0, seconds=took[cand], train_s=took[cand] - 10, epochs=3)

    outcome = run_budget([a, b, c], 100.0, train, by_work, clock=clock)
    assert [Candidate.of(r) for r in outcome.rows] == [a, c]
    assert [s.candidate for s in outcome.skipped] == [b]
    skipped = outcome.skipped[0]
    assert skipped.predicted_s > skipped.left_s == pytest.approx(60.0)
    assert outcome.predicted[a] is None and outcome.predicted[c] == pytest.approx(40.0)
    assert not outcome.overran and outcome.elapsed_s == pytest.approx(80.0)
    lines = budget_lines(outcome)
    assert lines[0].startswith("budget 1.66667 min: 1.3 min spent on 2 candidates, 1 skipped")
    assert lines[1].startswith("  skipped gru 64 seq_len 12: predicted ") and "60 s" in lines[1]
    assert not any(line.startswith("warning") for line in lines)


def test_a_budget_too_small_for_one_candidate_trains_the_cheapest_and_warns():
    clock = FakeClock()
    plan = order(build_grid([12, 24], ["gru", "lstm"], [8]), WIDTH)

    def train(cand: Candidate, n: int) -> SweepRow:
        clock.now += 90.0
        return row(cand, 1.0, seconds=90.0, train_s=80.0)

    outcome = run_budget(plan, 60.0, train, by_work, clock=clock)
    assert [Candidate.of(r) for r in outcome.rows] == [plan[0]]
    assert [s.candidate for s in outcome.skipped] == plan[1:]
    assert outcome.overran
    warning = budget_lines(outcome)[-1]
    assert warning.startswith("warning: the budget (1 min) was too small for even one candidate")
    assert "the cheapest took 1.5 min and is the one written" in warning


@settings(max_examples=60, deadline=None)
@given(
    budget=st.floats(5, 2000),
    fixed=st.floats(0, 20),
    rate=st.floats(1e-6, 1e-3),
    epochs=st.integers(1, 50),
)
def test_with_exact_predictions_only_a_first_candidate_can_overrun(budget, fixed, rate, epochs):
    """Candidates that take what the time model says: every one is trained or skipped, once, in
    plan order, and the budget is never exceeded after the first."""
    clock = FakeClock()
    plan = order(build_grid([12, 24, 48], ["gru", "lstm"], [8, 16, 32]), WIDTH)

    def train(cand: Candidate, n: int) -> SweepRow:
        train_s = epochs * rate * work(cand, WIDTH)
        clock.now += fixed + train_s
        return row(cand, 1.0, seconds=fixed + train_s, train_s=train_s, epochs=epochs)

    outcome = run_budget(plan, budget, train, by_work, clock=clock)
    trained = [Candidate.of(r) for r in outcome.rows]
    assert trained[0] == plan[0]
    assert sorted(trained + [s.candidate for s in outcome.skipped], key=plan.index) == plan
    assert trained == sorted(trained, key=plan.index)
    if len(trained) > 1:
        assert outcome.elapsed_s <= budget * (1 + 1e-9)


def test_the_pick_is_by_validation_never_test_and_leans_to_the_cheaper_within_2_percent():
    g48, l48, l96 = (Candidate(48, "gru", (32,)), Candidate(48, "lstm", (64,)),
                     Candidate(96, "lstm", (64,)))  # fmt: skip
    rows = [
        row(g48, 10.15, cost=4.0, test=9.0),  # within 2 % of the best and cheapest: picked
        row(l48, 10.0, cost=9.0, test=12.0),  # lowest validation MAE
        row(l96, 10.6, cost=12.0, test=1.0),  # the best test MAE must not matter
    ]
    d = decide(rows)
    assert d.recommended is rows[1] and d.cheapest is rows[0]
    text = format_auto(
        run_budget([g48, l48, l96], 1e9, lambda c, n: rows[n - 1], by_work, clock=FakeClock()),
        d,
        rows[0],
    )
    assert "recommended: --seq-len 48 --cell lstm --units 64 (lowest validation MAE" in text
    assert "cheapest within 2%: --seq-len 48 --cell gru --units 32" in text
    marked = [line for line in text.splitlines() if line.strip().startswith("* ")]
    assert marked == [next(line for line in text.splitlines() if "* gru 32 seq_len 48" in line)]
    assert "test" not in text.splitlines()[1]  # the table shows no test column
