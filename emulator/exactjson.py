"""JSON output that writes Decimal values as exact JSON numbers.

Money must survive the wire to the last digit: the standard encoder would turn a
Decimal into a float (or refuse it), so this module walks the value itself and
writes each Decimal with its own digits, never in exponent notation.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

__all__ = ["decimal_text", "dumps"]


def decimal_text(value: Decimal) -> str:
    """Plain positional digits for a Decimal: no exponent, no needless trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("", "-0"):
        text = "0"
    return text


def dumps(value: Any) -> str:
    """Serialize ``value`` compactly; Decimals become exact numbers."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write non-finite Decimal {value!r} as JSON")
        out.append(decimal_text(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        # str, int, float, bool and None: the standard encoder is exact for these.
        out.append(json.dumps(value))
