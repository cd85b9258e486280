"""Figures as people read them (pages, exports, the PDF report): percentages with their intervals, kappas with
theirs, and the reason when a figure is undefined."""

from __future__ import annotations

DASH = "—"


def pct(value, digits: int = 1) -> str:
    return DASH if value is None else f"{100 * value:.{digits}f}%"


def num(value, digits: int = 2) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def interval(low, high, fmt) -> str:
    if low is None or high is None:
        return ""
    return f"{fmt(low)} to {fmt(high)}"


def est_pct(est: dict | None, digits: int = 1) -> dict:
    """``{"value", "ci", "reason", "count"}`` strings of a proportion estimate."""
    est = est or {}
    value = est.get("value")
    return {
        "value": pct(value, digits),
        "ci": interval(est.get("low"), est.get("high"), lambda v: pct(v, digits)),
        "reason": est.get("reason") or est.get("ci_reason"),
        "count": f"{est['x']}/{est['n']}" if est.get("n") is not None and est.get("x") is not None else "",
        "defined": value is not None,
        "raw": value,
    }


def est_num(est: dict | None, digits: int = 2) -> dict:
    est = est or {}
    value = est.get("value")
    return {
        "value": num(value, digits),
        "ci": interval(est.get("low"), est.get("high"), lambda v: num(v, digits)),
        "reason": est.get("reason") or est.get("ci_reason"),
        "band": est.get("band"),
        "defined": value is not None,
        "raw": value,
    }


def pair_display(pair: dict) -> dict:
    """An agreement pair (API shape: values plus ``ci``) as display strings."""

    def rebuild(key):
        ci = pair["ci"].get(key, {})
        return {
            "value": pair.get(key),
            "low": ci.get("low"),
            "high": ci.get("high"),
            "reason": pair.get("reasons", {}).get(key),
            "x": pair.get("agreements", {}).get(key),
            "n": pair["n"] if key == "exact" else pair.get("n_ordinal"),
            "band": pair.get("bands", {}).get(key),
        }

    return {
        "exact": est_pct(rebuild("exact")),
        "within_one": est_pct(rebuild("within_one")),
        "kappa": est_num(rebuild("kappa")),
        "kappa_linear": est_num(rebuild("kappa_linear")),
        "kappa_quadratic": est_num(rebuild("kappa_quadratic")),
        "referral_exact": est_pct(pair["referral"]["exact"]),
        "referral_kappa": est_num(pair["referral"]["kappa"]),
    }
