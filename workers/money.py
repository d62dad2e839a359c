"""Money as text, the two ways it is written.

- :func:`exact_decimal` is the *data* form (JSON, the JobResult, the report dict): every digit
  the provider reported, never an exponent, so sums match to the last digit.
- :func:`display_usd` is the *display* form (the CLI, the report's text and HTML, the demo):
  a fixed number of decimals chosen by what the figure is, so a column of costs lines up and
  ``0``, ``0.0000322`` and ``0.00011250`` never sit side by side. Display only: never parse it.

Both take Decimal (or an exact decimal string); a float never becomes money here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

MoneyContext = Literal["cost", "revenue", "price"]

# Decimals shown per context. Provider costs of one call are often below a cent of a cent;
# eight places show them to 1e-8 USD. Revenue, subscription prices and spend caps are whole
# cents. Per-token prices go down to about 1e-8 USD per token, so ten places.
DISPLAY_PLACES: dict[MoneyContext, int] = {"cost": 8, "revenue": 2, "price": 10}


def exact_decimal(value: Decimal | int | str | None) -> str:
    """An exact decimal string with every digit and no exponent (``"0.000123"``); None is 0."""
    return format(Decimal(value or 0), "f")


def display_usd(value: Decimal | int | str | None, context: MoneyContext = "cost") -> str:
    """``$0.00011250`` (``context`` fixes the decimals, half to even); ``n/a`` for None."""
    if value is None:
        return "n/a"
    if isinstance(value, float):  # a float here is a bug upstream, not something to round
        raise TypeError("money must be Decimal or a decimal string, not float")
    amount = Decimal(value).quantize(Decimal(1).scaleb(-DISPLAY_PLACES[context]), rounding=ROUND_HALF_EVEN)
    return f"-${-amount:f}" if amount < 0 else f"${amount:f}"
