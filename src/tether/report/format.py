"""Numbers as a person reads them: seconds, bytes, times within the run."""
from __future__ import annotations


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0 s"
    magnitude = abs(value)
    if magnitude < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if magnitude < 1:
        return f"{value * 1e3:.1f} ms"
    if magnitude < 120:
        return f"{value:.2f} s"
    minutes, rest = divmod(value, 60)
    if minutes < 120:
        return f"{int(minutes)} min {rest:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def size(value: float | None) -> str:
    if value is None:
        return "–"
    value = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value} B"   # not reached


def count(value: int, noun: str) -> str:
    return f"{value} {noun}" + ("" if value == 1 else "s")
