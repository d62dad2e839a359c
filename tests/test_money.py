"""Money as text: exact for data, fixed decimals for people, never through a float."""

from decimal import Decimal

import pytest

from workers.money import display_usd, exact_decimal

pytestmark = pytest.mark.unit


def test_costs_side_by_side_are_shown_with_the_same_number_of_decimals():
    shown = [display_usd(v) for v in (Decimal(0), "0.0000322", "0.00011250", Decimal("2.9760000000000003e-05"))]
    assert shown == ["$0.00000000", "$0.00003220", "$0.00011250", "$0.00002976"]


def test_revenue_is_shown_in_cents_and_a_loss_with_its_sign_first():
    assert display_usd("1234.5", "revenue") == "$1234.50"
    assert display_usd(Decimal("-0.125"), "revenue") == "-$0.12"  # half to even


def test_the_exact_form_keeps_every_digit_and_never_uses_an_exponent():
    assert exact_decimal(Decimal("1E-7")) == "0.0000001"
    assert exact_decimal(None) == "0"


def test_a_float_is_refused_rather_than_rounded_into_money():
    with pytest.raises(TypeError):
        display_usd(0.1)  # type: ignore[arg-type]
