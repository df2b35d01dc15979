"""Figures as text, one convention for every view (table, summary, report, HTML).

A value is written with three significant digits and the SI prefix that puts it between 1
and 1000 (``12.7 mJ``, ``3.18 J``, ``450 µg``, ``1.27 s``), never in exponent notation and
never with binary-float noise (``0.7200000000000001``). CO2e is in grams (``g``, ``kg``,
``Mg``), energy in joules, durations in seconds.
"""

from __future__ import annotations

import math

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def _digits(value: float) -> str:
    """``value`` to three significant digits, no exponent, no trailing zeros (``%g`` without
    its exponent form: ``1270``, ``12.7``, ``0.72``)."""
    magnitude = abs(value)
    decimals = max(0, 2 - math.floor(math.log10(magnitude))) if magnitude > 0 else 0
    text = f"{value:.{decimals}f}"
    if decimals and abs(float(text)) >= 10 ** (3 - decimals):  # 9.996 -> "10.00": one digit fewer
        text = f"{value:.{decimals - 1}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_si(value: float, unit: str) -> str:
    """``value`` in ``unit`` with an SI prefix: ``format_si(0.0127, "J") == "12.7 mJ"``."""
    if not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude == 0:
        return f"0 {unit}"
    for scale, prefix in _PREFIXES:
        if magnitude >= scale * 0.9995:  # 999.96 m rounds to 1.00, not 1000 m
            return f"{_digits(value / scale)} {prefix}{unit}"
    scale, prefix = _PREFIXES[-1]
    return f"{_digits(value / scale)} {prefix}{unit}"


def format_energy(joules: float) -> str:
    return format_si(joules, "J")


def format_grams(grams: float) -> str:
    return format_si(grams, "g")


def format_seconds(seconds: float) -> str:
    """Durations: SI prefixes below a second, plain seconds above (``1270 s``, not ``1.27 ks``)."""
    if math.isfinite(seconds) and abs(seconds) >= 1:
        return f"{_digits(seconds)} s"
    return format_si(seconds, "s")


def format_number(value: float) -> str:
    """A plain number to three significant digits, without exponent (``1.2``, ``0.72``, ``1270``)."""
    if not math.isfinite(value):
        return "n/a"
    return _digits(value)
