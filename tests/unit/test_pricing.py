"""PERIAN billing semantics (perianctl.perian.pricing): unit price × whole billed units, per granularity."""

from decimal import Decimal

import pytest

from perianctl.perian.pricing import rate


@pytest.mark.parametrize(
    ("granularity", "seconds", "units"),
    [
        ("PER_SECOND", 1200, 1200),
        ("PER_SECOND", 0.2, 1),
        ("PER_MINUTE", 1200, 20),
        ("PER_MINUTE", 61, 2),
        ("PER_10_MINUTES", 1200, 2),
        ("PER_10_MINUTES", 1201, 3),
        ("PER_HOUR", 1200, 1),
        ("PER_HOUR", 3600, 1),
        ("PER_HOUR", 3601, 2),
    ],
)
def test_billed_units_round_up_per_granularity(granularity: str, seconds: float, units: int) -> None:
    r = rate("1.0", granularity, "EUR")
    assert r is not None
    assert r.billed_units(seconds) == units
    assert r.cost(seconds) == Decimal(units)


def test_a_1200_s_job_at_1_per_10_minutes_costs_2_and_6_per_hour() -> None:
    # The case the three old copies disagreed on (the connector said 20.0, watch said 2.00).
    r = rate("1.0", "PER_10_MINUTES", "EUR")
    assert r is not None
    assert r.cost(1200) == Decimal("2.0")
    assert r.per_hour == Decimal(6)


def test_per_hour_is_the_same_rate_whatever_the_granularity() -> None:
    per_second = rate("0.0005", "PER_SECOND", "EUR")
    per_hour = rate("1.8", "PER_HOUR", "EUR")
    assert per_second is not None and per_hour is not None
    assert per_second.per_hour == per_hour.per_hour == Decimal("1.8")


def test_not_started_costs_nothing() -> None:
    r = rate("2.5", "PER_HOUR", "EUR")
    assert r is not None
    assert r.cost(0) == 0 and r.cost(float("nan")) == 0


@pytest.mark.parametrize(
    ("granularity", "budget", "seconds"),
    [("PER_SECOND", "1", 2000), ("PER_MINUTE", "1", 1980), ("PER_10_MINUTES", "1", 1800), ("PER_HOUR", "1", 0)],
)
def test_budget_turns_into_whole_units_of_runtime(granularity: str, budget: str, seconds: int) -> None:
    unit = {"PER_SECOND": "0.0005", "PER_MINUTE": "0.03", "PER_10_MINUTES": "0.3", "PER_HOUR": "1.8"}[granularity]
    r = rate(unit, granularity, "EUR")
    assert r is not None
    assert r.max_seconds(Decimal(budget)) == seconds
    assert r.cost(seconds) <= Decimal(budget)


@pytest.mark.parametrize(
    ("unit", "granularity", "currency"),
    [
        (None, "PER_HOUR", "EUR"),
        ("NaN", "PER_HOUR", "EUR"),
        ("-1", "PER_HOUR", "EUR"),
        ("1e999999", "PER_HOUR", "EUR"),
        ("x", "PER_HOUR", "EUR"),
        ("1", "UNDEFINED", "EUR"),
        ("1", None, "EUR"),
        ("1", "PER_HOUR", "Undefined"),
        ("1", "PER_HOUR", None),
        (True, "PER_HOUR", "EUR"),
    ],
)
def test_unusable_prices_are_none_never_a_guess(unit: object, granularity: str | None, currency: str | None) -> None:
    assert rate(unit, granularity, currency) is None


def test_runtime_and_cost_of_a_job_follow_its_timestamps() -> None:
    from datetime import UTC, datetime, timedelta

    from perianctl.perian.models import JobView
    from perianctl.perian.pricing import job_cost, runtime_seconds

    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    price = {"unit_price": "1.0", "currency": "EUR", "granularity": "PER_10_MINUTES"}
    running = JobView.model_validate({"status": "Running", "started_at": t0, "price": price})
    assert runtime_seconds(running, t0 + timedelta(seconds=1200)) == 1200
    cost = job_cost(running, t0 + timedelta(seconds=1200))
    assert cost is not None and cost.amount == Decimal(2) and not cost.final
    # Finished without done_at: PERIAN's last change ends it (never "now", which would keep growing).
    ended = JobView.model_validate(
        {"status": "Cancelled", "started_at": t0, "price": price, "updated_at": t0 + timedelta(seconds=601)}
    )
    assert runtime_seconds(ended, t0 + timedelta(days=3)) == 601
    cost = job_cost(ended)
    assert cost is not None and cost.amount == Decimal(2) and cost.final
    queued = JobView.model_validate({"status": "Queued", "price": price})
    assert runtime_seconds(queued) is None
    cost = job_cost(queued)
    assert cost is not None and cost.amount == 0 and cost.billed_units == 0
    unknown_end = JobView.model_validate({"status": "Done", "started_at": t0, "price": price})
    assert runtime_seconds(unknown_end) is None and job_cost(unknown_end) is None
