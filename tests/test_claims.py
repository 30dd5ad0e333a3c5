"""kc.studies.claims: claims as data, and "not testable" kept apart from "not reproduced"."""

from __future__ import annotations

import numpy as np
import pytest

from kc.studies.claims import (
    STATUSES,
    Claim,
    check,
    claims_markdown,
    count_statuses,
    from_checks,
    untestable,
)


def test_check_follows_the_boolean() -> None:
    yes = check("a.b", "Table 1", "x < y", 0.1 < 0.2, evidence="0.1 vs 0.2", numbers={"x": 0.1})
    no = check("a.c", "Table 1", "x < y", np.float64(0.3) < 0.2, evidence="0.3 vs 0.2")
    assert (yes.status, no.status) == ("reproduced", "not reproduced")
    assert yes.tested and no.tested and yes.numbers == {"x": 0.1}


def test_check_refuses_a_status_typed_in_by_hand() -> None:
    with pytest.raises(TypeError, match="must be a bool computed from the data, got 'yes'"):
        check("a.b", "Table 1", "claim", "yes", evidence="")  # type: ignore[arg-type]


def test_claim_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        Claim("a", "Table 1", "claim", "", "reproduced?", "e")
    with pytest.raises(ValueError, match="Claim.id must not be empty"):
        Claim(" ", "Table 1", "claim", "", "reproduced", "e")
    with pytest.raises(ValueError, match=r"numbers\['x'\] must be a number, got 'big'"):
        Claim("a", "Table 1", "claim", "", "reproduced", "e", {"x": "big"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="say why"):
        untestable("a", "Table 1", "claim", "  ")


def test_untestable_is_not_a_failed_reproduction() -> None:
    c = untestable("t.depth", "Table 1", "deeper is less stable", "needs two layers, got 1")
    assert c.status == "not testable" and not c.tested
    assert "not testable with these parameters" in c.line() and "NOT" not in c.line()
    assert count_statuses([c]) == {"reproduced": 0, "not reproduced": 0, "not testable": 1}


def test_from_checks_marks_checks_our_parameters_cannot_make_as_not_testable() -> None:
    paper = {
        "t.layers": {"claim": "conv4 < conv5", "holds": True, "evidence": "0.086 < 0.107",
                     "numbers": {}},
        "t.archs": {"claim": "AlexNet < VGG", "holds": True, "evidence": "p", "numbers": {}},
        "t.none": {"claim": "ResNet layers", "holds": None, "evidence": "one layer", "numbers": {}},
    }  # fmt: skip
    ours = {  # one layer only: the layer check cannot decide; the arch check is absent
        "t.layers": {"claim": "conv4 < conv5", "holds": None, "evidence": "needs two layers",
                     "numbers": {}},
        "t.extra": {"claim": "ours only", "holds": False, "evidence": "e", "numbers": {"v": 1}},
        "t.none": {"claim": "ResNet layers", "holds": None, "evidence": "one layer", "numbers": {}},
    }  # fmt: skip
    claims = {c.id: c for c in from_checks(ours, paper, "Table 1")}
    assert list(claims) == ["t.layers", "t.archs", "t.extra"]  # t.none: neither side makes it
    assert claims["t.layers"].status == "not testable"
    assert claims["t.layers"].evidence == "needs two layers"
    assert claims["t.layers"].paper == "0.086 < 0.107"
    assert claims["t.archs"].status == "not testable"
    assert claims["t.extra"].status == "not reproduced" and claims["t.extra"].paper == ""


def test_markdown_lists_every_claim_and_counts_statuses() -> None:
    claims = [
        check("a", "Table 2", "one", True, evidence="e1", paper="p1"),
        untestable("b", "Table 2", "two", "needs ORDER >= 1, got 0"),
    ]
    text = claims_markdown(claims)
    assert text.startswith("- **reproduced**: Table 2, one (e1; paper: p1)\n")
    assert "- **not testable with these parameters**: Table 2, two" in text
    assert text.endswith("1 reproduced, 0 not reproduced, 1 not testable\n")
    with pytest.raises(ValueError, match="no claims"):
        claims_markdown([])
    assert STATUSES == ("reproduced", "not reproduced", "not testable")
