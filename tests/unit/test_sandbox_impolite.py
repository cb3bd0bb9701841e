"""The impolite PERIAN: its rule language and rule set, without a server.

The behaviour over real HTTP to a sandbox subprocess is in tests/integration/test_sandbox_impolite.py.
"""

from __future__ import annotations

import pytest

from perianctl.sandbox.impolite import ImpoliteRule, ImpoliteRuleError, parse_rule, rules_from_json

# --------------------------------------------------------------------------- rule model


@pytest.mark.parametrize(
    "text",
    [
        "create=slow:7s",
        "create=stall:15s,count=1",
        "*=refuse:10s",
        "*=429:count=20,retry-after=2s",
        "cancel=slow:0.25s,commit=no",
        "get=429",
        "list=429:0.5s,retry-after=0.1s",
    ],
)
def test_compact_syntax_round_trips(text: str) -> None:
    rule = parse_rule(text)
    assert rule.spec() == text
    assert parse_rule(rule.spec()) == rule == ImpoliteRule.from_json(rule.to_json())


def test_one_refuse_window_at_a_time() -> None:
    with pytest.raises(ImpoliteRuleError, match="one refuse"):
        rules_from_json({"rules": [parse_rule("*=refuse:1s").to_json(), parse_rule("*=refuse:2s").to_json()]})


def test_the_admin_body_takes_rules_in_the_compact_syntax_too() -> None:
    """``connector check`` sends its scenarios' rules as written (it imports nothing of the sandbox)."""
    assert rules_from_json({"rules": ["get=slow:7s", {"endpoint": "create", "mode": "429"}]}) == (
        parse_rule("get=slow:7s"),
        parse_rule("create=429"),
    )
    with pytest.raises(ImpoliteRuleError, match="rule 0"):
        rules_from_json({"rules": ["get=sideways"]})
