"""The benchmark's arithmetic (no timing is asserted anywhere in the test suite)."""

from __future__ import annotations

import itertools
import math

import pytest
from bench.stats import growth, percentile, ratio, schedule, summary


def test_percentile_is_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 99.9) == 100.0
    assert percentile(samples, 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_summary_matches_percentile() -> None:
    samples = [float(v % 37) for v in range(1000)]
    result = summary(samples)
    assert result["count"] == 1000
    assert result["p99"] == percentile(samples, 99)
    assert result["max"] == 36.0
    assert result["mean"] == pytest.approx(sum(samples) / 1000)


def test_schedule_holds_the_rate_without_drift() -> None:
    times = list(schedule(200.0, 10.0, start=5.0))
    assert len(times) == 2000
    assert times[0] == 5.0
    assert times[-1] == pytest.approx(5.0 + 1999 / 200.0)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.005}
    with pytest.raises(ValueError, match="positive"):
        list(schedule(0.0, 1.0))


def test_ratio_and_growth() -> None:
    assert ratio(50.0, 100.0) == 0.5
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 1.0) is None
    base, peak, grown = growth([100.0, 200.0, 100.0, 105.0, 104.0, 110.0, 100.0, 101.0, 102, 103])
    assert base == 100.0  # the sample at the end of the first 20 %
    assert peak == 110.0
    assert grown == pytest.approx(0.10)


def test_turns_compare_each_round_with_its_own_floor() -> None:
    from bench.turns import summarise

    rounds = [
        {"floor": {"rps_per_core": 4000.0}, "bastion-embedded": {"rps_per_core": 2400.0}},
        {"floor": {"rps_per_core": 6000.0}, "bastion-embedded": {"rps_per_core": 3000.0}},
        {"floor": {"rps_per_core": 5000.0}, "bastion-embedded": {"rps_per_core": 2600.0}},
    ]
    summary = summarise(rounds)
    assert list(summary) == ["floor", "bastion-embedded"]
    embedded = summary["bastion-embedded"]
    # per-round ratios 0.60, 0.50, 0.52: their median, not the ratio of the medians (0.52)
    assert embedded["floor_ratio"] == 0.52
    assert (embedded["floor_ratio_min"], embedded["floor_ratio_max"]) == (0.5, 0.6)
    assert embedded["rps_per_core"] == 2600.0
    assert "floor_ratio" not in summary["floor"]


def _share_row(per_target: float, turned: dict[str, float]) -> str:
    from bench.report import targets_table

    def target(rps: float) -> dict[str, object]:
        return {"saturation": {"unary": {"rps_per_core": rps}}}

    results = {
        "settings": {"rate": 200},
        "targets": {"floor": target(6000.0), "bastion-embedded": target(per_target)},
        "turns": {"summary": {"bastion-embedded": turned}},
    }
    return next(line for line in targets_table(results) if "of the floor's" in line)


def test_the_share_of_the_floor_is_judged_on_the_turns() -> None:
    turned = {"rps_per_core": 2700.0, "rounds": 6.0, "floor_ratio": 0.53}
    turned |= {"floor_ratio_min": 0.44, "floor_ratio_max": 0.64}
    # the per-target runs, minutes apart, read 0.39; the rounds, seconds apart, 0.53
    row = _share_row(2340.0, turned)
    assert "in turns 0.53 (median of 6 rounds, 0.44–0.64)" in row
    assert "per-target runs 0.39 (2,340 / 6,000 req/s)" in row
    assert "**PASS**" in row
    # and the other way round: a per-target pass does not hide a share below the target
    row = _share_row(3060.0, turned | {"floor_ratio": 0.47})
    assert "per-target runs 0.51" in row
    assert "**FAIL**" in row


def test_too_few_turns_leave_the_verdict_to_the_per_target_runs() -> None:
    row = _share_row(3060.0, {"rps_per_core": 2700.0, "rounds": 2.0, "floor_ratio": 0.47})
    assert "0.51 (3,060 / 6,000 req/s); in turns 0.47 (too few rounds to judge by)" in row
    assert "**PASS**" in row


def test_a_turn_without_a_figure_per_core_is_left_out() -> None:
    from bench.stats import per_core
    from bench.turns import summarise

    assert per_core(3000.0, 0.01) is None  # the gateway barely ran: no figure
    rounds = [
        {"floor": {"rps_per_core": 5000.0}, "bastion-embedded": {"rps_per_core": None}},
        {"floor": {"rps_per_core": 5000.0}, "bastion-embedded": {"rps_per_core": 2500.0}},
    ]
    embedded = summarise(rounds)["bastion-embedded"]
    assert embedded["rounds"] == 1.0
    assert embedded["floor_ratio"] == 0.5


def test_report_says_when_per_target_runs_and_turns_disagree() -> None:
    from bench.report import disagreements, turns_table

    def target(label: str, rps: float) -> dict[str, object]:
        return {"label": label, "saturation": {"unary": {"rps_per_core": rps}}}

    results = {
        "targets": {"floor": target("floor", 3303.0), "bastion-embedded": target("emb", 2100.0)},
        "turns": {
            "seconds": 3,
            "connections": 64,
            "rounds": [{}],
            "summary": {
                "floor": {"rps_per_core": 4080.0},
                "bastion-embedded": {
                    "rps_per_core": 1964.0,
                    "floor_ratio": 0.51,
                    "floor_ratio_min": 0.36,
                    "floor_ratio_max": 0.63,
                },
            },
        },
    }
    # the floor's own run was 19 % slower than in turns; embedded's 7 % apart: within bounds
    assert disagreements(results) == ["floor 3,303 vs 4,080 (-19%)"]
    assert any("disagree by more than 15%" in line for line in turns_table(results))
    results["targets"]["floor"] = target("floor", 4000.0)
    assert disagreements(results) == []
    assert not any("disagree" in line for line in turns_table(results))


def test_turns_give_bastions_multiple_of_litellm_round_by_round() -> None:
    from bench.turns import summarise

    rounds = [
        {
            "floor": {"rps_per_core": 6000.0},
            "bastion-embedded": {"rps_per_core": 3000.0},
            "litellm-keys": {"rps_per_core": 60.0},
        },
        {
            "floor": {"rps_per_core": 9000.0},
            "bastion-embedded": {"rps_per_core": 4500.0},
            "litellm-keys": {"rps_per_core": 120.0},
        },
        {
            "floor": {"rps_per_core": 4000.0},
            "bastion-embedded": {"rps_per_core": 2000.0},
            "litellm-keys": {"rps_per_core": 50.0},
        },
    ]
    summary = summarise(rounds)
    embedded = summary["bastion-embedded"]
    # 50×, 37.5×, 40×: the median of the rounds, each read seconds apart
    assert embedded["litellm_times"] == 40.0
    assert (embedded["litellm_times_min"], embedded["litellm_times_max"]) == (37.5, 50.0)
    assert embedded["litellm_rounds"] == 3.0
    assert "floor_ratio" not in summary["litellm-keys"]  # LiteLLM is not judged on the floor
    assert "litellm_times" not in summary["floor"]


def test_the_multiple_of_litellm_is_judged_on_the_turns() -> None:
    from bench.report import targets_table, turns_table

    def target(rps: float) -> dict[str, object]:
        return {"saturation": {"unary": {"rps_per_core": rps}}}

    turned = {"rps_per_core": 3000.0, "rounds": 3.0, "floor_ratio": 0.5}
    turned |= {"floor_ratio_min": 0.5, "floor_ratio_max": 0.5}
    turned |= {"litellm_times": 40.0, "litellm_times_min": 37.5, "litellm_times_max": 50.0}
    results = {
        "settings": {"rate": 200},
        "targets": {
            "floor": target(6000.0),
            "bastion-embedded": target(3000.0),
            "litellm-keys": target(58.0),
        },
        "turns": {
            "seconds": 3,
            "connections": 64,
            "litellm_connections": 8,
            "rounds": [{}, {}, {}],
            "summary": {
                "floor": {"rps_per_core": 6000.0},
                "bastion-embedded": turned | {"litellm_rounds": 3.0},
                "litellm-keys": {"rps_per_core": 75.0},
            },
        },
    }
    row = next(line for line in targets_table(results) if "LiteLLM" in line)
    # alone, LiteLLM's slow moment made it 51.7×; seconds apart it is 40×
    assert "in turns 40.0× (median of 3 rounds, 37.5–50.0×)" in row
    assert "per-target runs 51.7× (3,000 / 58 req/s)" in row
    assert "**FAIL**" in row
    table = "\n".join(turns_table(results))
    assert "(64 connections; LiteLLM 8)" in table
    assert "| 40.0× (37.5–50.0×) |" in table
    # too few rounds with LiteLLM in them: the per-target runs decide
    results["turns"]["summary"]["bastion-embedded"]["litellm_rounds"] = 2.0
    row = next(line for line in targets_table(results) if "LiteLLM" in line)
    assert row.split("|")[3].strip() == "51.7× (3,000 / 58 req/s)"
    assert "**PASS**" in row
