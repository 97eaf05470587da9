"""Kubernetes value types on their own: what each accepts, and one ConfigError line naming
the value's place (list indexes left out: the message shows the value)."""

from typing import Any

import pytest

from buildtools.cluster import kubetypes as k
from buildtools.errors import ConfigError


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        (k.DnsLabel, "a" * 63, "a" * 63),
        (k.DnsLabel, "0-a", "0-a"),
        (k.DnsSubdomain, "a.b-c.d", "a.b-c.d"),
        (k.LabelKey, "example.org/a_b.c", "example.org/a_b.c"),
        (k.LabelValue, "", ""),
        (k.Quantity, 2, "2"),
        (k.Quantity, 0.5, "0.5"),
        (k.Quantity, "1.5Gi", "1.5Gi"),
        (k.Quantity, "+1e3", "+1e3"),
        (k.Count, 0, 0),
        (k.Words, ["--a", "b"], ("--a", "b")),
        (k.Names, ("a", "b"), ("a", "b")),
        (k.Tolerations, [{"operator": "Exists", "effect": ""}], ({"operator": "Exists", "effect": ""},)),
    ],
)
def test_valid_values(type_: Any, value: object, expected: object) -> None:
    assert k.validate(type_, "x", value) == expected


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        (k.DnsLabel, "a" * 64, "x must be at most 63 characters of lowercase letters"),
        (k.DnsLabel, "a\n", "x must be at most 63 characters"),
        (k.DnsSubdomain, "a..b", "x must be a DNS-1123 subdomain"),
        (k.LabelKey, "a/b/c", "x: 'a/b/c' is not a valid label key"),
        (k.LabelKey, "a" * 64, "is not a valid label key"),
        (k.LabelKey, "a" * 254 + "/b", "is not a valid label key"),
        (k.LabelValue, "-a", "x: '-a' is not a valid label value"),
        (k.Quantity, "-1", "x: '-1' is not a Kubernetes quantity"),
        (k.Quantity, "1Ki2", "is not a Kubernetes quantity"),
        (k.Quantity, None, "x: None is not a Kubernetes quantity"),
        (k.Count, 2.0, "x must be an integer >= 0, got 2.0"),
        (k.Words, ["a", "b c"], "x: 'b c' must be a non-empty string without whitespace"),
        (k.Words, (w for w in ["a"]), "x must be a list of strings"),
        (k.Labels, {"a": 1}, "x.a: 1 is not a valid label value"),
        (k.Quantities, {"cpu": "1", "memory": "x"}, "x.memory: 'x' is not a Kubernetes quantity"),
        (k.Tolerations, [{}, {"tolerationSeconds": -1}], "x.tolerationSeconds must be an integer >= 0"),
        (k.Tolerations, ["x"], "x must be a mapping, got 'x'"),
        (k.AffinityRules, {"nodeAffinity": []}, "x.nodeAffinity: Input should be a valid dictionary"),
    ],
)
def test_invalid_values_name_their_place(type_: Any, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        k.validate(type_, "x", value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
