"""Money in the sandbox without a server (the bill over real HTTP is in tests/integration/test_sandbox_billing.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from perianctl.perian import pricing
from perianctl.sandbox import billing, catalogue


def test_bill_windows_and_periods() -> None:
    now = dt.datetime(2026, 3, 18, 15, 30, tzinfo=dt.UTC)  # a Wednesday
    assert billing.period("Day", now) == (
        dt.datetime(2026, 3, 18, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 19, tzinfo=dt.UTC),
    )
    assert billing.period("Week", now)[0] == dt.datetime(2026, 3, 16, tzinfo=dt.UTC)
    assert billing.period("Month", now) == (
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    assert billing.period("Year", now)[1] == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    start, end = billing.last_month(dt.datetime(2026, 1, 10, tzinfo=dt.UTC))
    assert start == dt.datetime(2025, 12, 1, tzinfo=dt.UTC) and end.date() == dt.date(2025, 12, 31)
    # the SDK's format (naive, or "+0000") and ISO with Z all read as UTC
    for text in ("2025-01-02T03:04:05.000006", "2025-01-02T03:04:05.000006+0000", "2025-01-02T03:04:05.000006Z"):
        assert billing.parse_moment(text, "start_time") == dt.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    assert pricing.decimal_text(Decimal("0.00080")) == "0.0008" and pricing.decimal_text(Decimal("1E+1")) == "10"
    assert pricing.decimal_text(Decimal("0E-8")) == "0"


def test_catalogue_unit_prices_are_per_unit_of_granularity() -> None:
    for itype in catalogue.INSTANCE_TYPES:
        rate = pricing.rate(itype.unit_price, itype.billing_granularity, "EUR")
        assert rate is not None and rate.per_hour == Decimal(itype.eur_per_hour), itype.name
        assert "E" not in itype.unit_price and rate.cost(3600) == Decimal(itype.eur_per_hour)
    by_name = {t.name: t for t in catalogue.INSTANCE_TYPES}
    assert by_name["gpu-h100-1"].unit_price == "0.0008"  # 2.88 EUR/h billed per second
    assert by_name["1H100.80S.30V"].unit_price == "0.41"  # 2.46 EUR/h billed per 10 minutes
    cpu = [t.per_hour for t in catalogue.INSTANCE_TYPES if t.accelerator is None]
    assert Decimal("0.02") <= min(cpu) and max(cpu) <= Decimal("1")
    names = {a.name for a in catalogue.ACCELERATOR_TYPES}
    assert not names & {"NVIDIA_H200_141", "NVIDIA_B200_180"}  # unknown to perian-cli 0.3.6's SDK
