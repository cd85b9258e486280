"""Agreement and diagnostic-accuracy statistics: pure numpy / scipy, no Django.

Conventions
-----------
* Ratings are integer category indices ``0 … k-1``; a negative index (or None / NaN) means "no rating" and the pair
  is left out. Ordinal scores of the categories (for weighted kappa and "within one step") are given separately.
* Every estimate is a dict ``{"value", "low", "high", "reason", …}``. A statistic that is undefined for the data (no
  pairs, a single category, no positives, a zero denominator) has ``value`` None and a ``reason`` saying why; a
  defined one has ``reason`` None. No function returns NaN or infinity and none raises on such data.
* Intervals are two-sided 95% unless ``confidence`` says otherwise:
  - proportions (agreement, sensitivity, specificity, PPV, NPV): Wilson score interval (Wilson 1927);
  - Cohen's kappa, unweighted and weighted: large-sample (asymptotic) standard error of Fleiss, Cohen & Everitt
    (1969), Wald interval clipped to [-1, 1]; or, on request, a percentile bootstrap over images (the table of pairs
    resampled as a multinomial, which is exactly resampling the pairs with replacement);
  - Fleiss' kappa: percentile bootstrap over images (subjects);
  - AUC: DeLong, DeLong & Clarke-Pearson (1988) variance (fast midrank algorithm of Sun & Xu 2014), Wald interval
    clipped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20240601

ANALYTIC = "analytic"
BOOTSTRAP = "bootstrap"
CI_METHODS = (ANALYTIC, BOOTSTRAP)

KAPPA_ANALYTIC_METHOD = "Asymptotic SE (Fleiss, Cohen & Everitt 1969), Wald 95% interval clipped to [-1, 1]"
KAPPA_BOOTSTRAP_METHOD = "Percentile bootstrap, {b} resamples of images (seed {seed})"
FLEISS_METHOD = "Percentile bootstrap, {b} resamples of images (seed {seed})"
WILSON_METHOD = "Wilson score interval"
DELONG_METHOD = "DeLong (1988) variance, Wald 95% interval clipped to [0, 1]"

# Landis & Koch (1977): upper bound of each band, inclusive.
LANDIS_KOCH = (
    (0.0, "poor"),
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.0, "almost perfect"),
)


# --- Result helpers ---------------------------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2))


def finite(x) -> float | None:
    """A float for JSON, or None for anything that is not a finite number."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def undefined(reason: str, **extra) -> dict:
    return {"value": None, "low": None, "high": None, "reason": reason, **extra}


def estimate(value, low=None, high=None, **extra) -> dict:
    """A defined estimate; a non-finite value turns it into an undefined one rather than leaking NaN."""
    v = finite(value)
    if v is None:
        return undefined("The value could not be computed from these data.", **extra)
    return {"value": v, "low": finite(low), "high": finite(high), "reason": None, **extra}


def landis_koch(kappa: float | None) -> str | None:
    """Landis & Koch band of a kappa: poor (≤ 0), slight, fair, moderate, substantial, almost perfect."""
    k = finite(kappa)
    if k is None:
        return None
    for upper, label in LANDIS_KOCH:
        if k <= upper + 1e-12:
            return label
    return LANDIS_KOCH[-1][1]


def as_codes(values) -> np.ndarray:
    """Integer category indices with -1 for "no rating" (None, NaN and negative values)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        arr = values.astype(np.int64, copy=False)
    else:
        if not isinstance(values, np.ndarray) or values.dtype == object:
            values = [np.nan if v is None else v for v in values]
        arr = np.asarray(values, dtype=float)
        arr = np.where(np.isfinite(arr), arr, -1).astype(np.int64)
    return np.where(arr < 0, -1, arr)


# --- Proportions --------------------------------------------------------------------------------------------------


def wilson_arrays(x, n, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval: (proportion, low, high); NaN where n == 0."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        # Rounding can leave the limits a hair inside p at x = 0 or x = n, where they are exactly 0 and 1.
        low = np.clip(np.minimum(centre - half, p), 0, 1)
        high = np.clip(np.maximum(centre + half, p), 0, 1)
    bad = n <= 0
    return np.where(bad, np.nan, p), np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def proportion(x: int, n: int, *, reason: str = "", confidence: float = CONFIDENCE) -> dict:
    """``x / n`` with its Wilson interval; undefined (with ``reason``) when n is 0."""
    x, n = int(x), int(n)
    if n <= 0:
        return undefined(reason or "No cases: the proportion is undefined.", x=x, n=n)
    p, low, high = wilson_arrays(x, n, confidence)
    return estimate(p, low, high, x=x, n=n)


# --- Confusion matrices and Cohen's kappa -----------------------------------------------------------------------------


def confusion_matrix(a, b, k: int) -> np.ndarray:
    """k x k counts, rows = ``a``, columns = ``b``; pairs with a missing rating (negative index) are left out."""
    a = as_codes(a)
    b = as_codes(b)
    keep = (a >= 0) & (b >= 0) & (a < k) & (b < k)
    return np.bincount(a[keep] * k + b[keep], minlength=k * k).reshape(k, k)


def agreement_weights(k: int, weights: str | None, scores: Sequence[float] | None = None) -> np.ndarray:
    """Agreement weights (1 on the diagonal). ``weights``: None (unweighted), "linear" or "quadratic"; ``scores``: the
    ordinal score of each category (default 0 … k-1), so tied scores count as full agreement."""
    if weights is None:
        return np.eye(k)
    s = np.arange(k, dtype=float) if scores is None else np.asarray(scores, dtype=float)
    if s.shape != (k,):
        raise ValueError(f"scores must have one value per category ({k}), got {s.shape}")
    span = float(s.max() - s.min()) if k else 0.0
    diff = np.abs(s[:, None] - s[None, :])
    if span == 0:
        return np.ones((k, k))
    if weights == "linear":
        return 1 - diff / span
    if weights == "quadratic":
        return 1 - (diff / span) ** 2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")


def _kappa_parts(p: np.ndarray, w: np.ndarray):
    """p: (…, k, k) proportions; returns (kappa, p_o, p_e, row, col) broadcast over leading axes."""
    row = p.sum(axis=-1)
    col = p.sum(axis=-2)
    p_o = (w * p).sum(axis=(-2, -1))
    p_e = (w * (row[..., :, None] * col[..., None, :])).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (p_o - p_e) / (1 - p_e)
    return kappa, p_o, p_e, row, col


def kappa_from_table(
    table,
    *,
    weights: str | None = None,
    scores: Sequence[float] | None = None,
    ci: str = ANALYTIC,
    confidence: float = CONFIDENCE,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """Cohen's kappa (``weights`` None) or weighted kappa of a k x k table of counts, with its interval and SE."""
    t = np.asarray(table, dtype=float)
    k = t.shape[0]
    n = float(t.sum())
    if n <= 0:
        return undefined("No images were rated by both raters.", n=0)
    w = agreement_weights(k, weights, scores)
    p = t / n
    kappa, _, p_e, row, col = _kappa_parts(p, w)
    if 1 - p_e <= 1e-12:
        return undefined(
            "Both raters gave every image the same grade: chance agreement is 100% and kappa is undefined.",
            n=int(n),
        )
    if ci == BOOTSTRAP:
        return _kappa_bootstrap(t, w, float(kappa), confidence, n_boot, seed)
    if ci != ANALYTIC:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    # Fleiss, Cohen & Everitt (1969), large-sample variance (not the null variance).
    w_row = (w * col[None, :]).sum(axis=1)  # mean weight of row category i over the column marginals
    w_col = (w * row[:, None]).sum(axis=0)
    term = (p * (w - (w_row[:, None] + w_col[None, :]) * (1 - kappa)) ** 2).sum()
    var = (term - (kappa - p_e * (1 - kappa)) ** 2) / ((1 - p_e) ** 2 * n)
    se = math.sqrt(max(float(var), 0.0))
    z = _z(confidence)
    return estimate(
        kappa,
        max(-1.0, kappa - z * se),
        min(1.0, kappa + z * se),
        se=finite(se),
        n=int(n),
        method=KAPPA_ANALYTIC_METHOD,
    )


def _kappa_bootstrap(t: np.ndarray, w: np.ndarray, kappa: float, confidence, n_boot: int, seed: int) -> dict:
    n = int(t.sum())
    k = t.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, (t / n).ravel(), size=n_boot).reshape(n_boot, k, k) / n
    kb, *_ = _kappa_parts(draws, w)
    kb = kb[np.isfinite(kb)]
    method = KAPPA_BOOTSTRAP_METHOD.format(b=n_boot, seed=seed)
    if kb.size < n_boot * 0.5:
        return estimate(kappa, n=n, method=method, ci_reason="Too few resamples had a defined kappa for an interval.")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(kb, [alpha, 1 - alpha])
    return estimate(kappa, low, high, se=finite(kb.std(ddof=1)), n=n, method=method)


def kappa(a, b, k: int, *, weights: str | None = None, scores=None, ci: str = ANALYTIC, **kw) -> dict:
    """Cohen's kappa of two raters' category indices (pairs with a missing rating are left out)."""
    return kappa_from_table(confusion_matrix(a, b, k), weights=weights, scores=scores, ci=ci, **kw)


def agreement_summary(
    a,
    b,
    k: int,
    *,
    scores: Sequence[float] | None = None,
    ordinal: Sequence[bool] | None = None,
    ci: str = ANALYTIC,
    confidence: float = CONFIDENCE,
) -> dict:
    """Everything a reading center reports for two raters on the same images.

    ``scores``: ordinal score of each category; ``ordinal``: which categories are on the ordered scale (the others,
    such as "ungradable", take part in % exact and unweighted kappa but not in the ordered statistics, which are then
    computed on the pairs where both grades are on the scale)."""
    table = confusion_matrix(a, b, k)
    return agreement_from_table(table, scores=scores, ordinal=ordinal, ci=ci, confidence=confidence)


def agreement_from_table(
    table,
    *,
    scores: Sequence[float] | None = None,
    ordinal: Sequence[bool] | None = None,
    ci: str = ANALYTIC,
    confidence: float = CONFIDENCE,
) -> dict:
    t = np.asarray(table, dtype=np.int64)
    k = t.shape[0]
    s = np.arange(k, dtype=float) if scores is None else np.asarray(scores, dtype=float)
    on_scale = np.ones(k, dtype=bool) if ordinal is None else np.asarray(ordinal, dtype=bool)
    n = int(t.sum())
    exact = int(np.trace(t))
    sub = t[np.ix_(on_scale, on_scale)]
    sub_scores = s[on_scale]
    n_ordinal = int(sub.sum())
    within = int((sub * (np.abs(sub_scores[:, None] - sub_scores[None, :]) <= 1 + 1e-9)).sum())
    if n_ordinal == 0:
        within_one = undefined("No pair where both grades are on the ordered scale.", x=0, n=0)
    elif float(np.ptp(sub_scores)) <= 1:
        within_one = undefined("The scale has only two levels: every pair is within one step.", x=within, n=n_ordinal)
    else:
        within_one = proportion(within, n_ordinal, confidence=confidence)
    if n_ordinal:
        kappa_linear = kappa_from_table(sub, weights="linear", scores=sub_scores, ci=ci, confidence=confidence)
        kappa_quadratic = kappa_from_table(sub, weights="quadratic", scores=sub_scores, ci=ci, confidence=confidence)
    else:
        kappa_linear = kappa_quadratic = undefined("No pair where both grades are on the ordered scale.", n=0)
    unweighted = kappa_from_table(t, ci=ci, confidence=confidence)
    for est in (unweighted, kappa_linear, kappa_quadratic):
        est["band"] = landis_koch(est["value"])
    return {
        "n": n,
        "n_ordinal": n_ordinal,
        "exact": proportion(exact, n, reason="No images were rated by both raters.", confidence=confidence),
        "within_one": within_one,
        "kappa": unweighted,
        "kappa_linear": kappa_linear,
        "kappa_quadratic": kappa_quadratic,
        "band": unweighted["band"],
        "confusion": t.tolist(),
    }


def kappa_by_group(groups, a, b, k: int, n_groups: int, *, min_n: int = 1, confidence: float = CONFIDENCE) -> list:
    """Unweighted kappa (analytic interval) per group (e.g. month index 0 … n_groups-1), one pass over the data."""
    groups = np.asarray(groups, dtype=np.int64)
    a = as_codes(a)
    b = as_codes(b)
    keep = (a >= 0) & (b >= 0) & (groups >= 0) & (groups < n_groups)
    flat = (groups[keep] * k + a[keep]) * k + b[keep]
    tables = np.bincount(flat, minlength=n_groups * k * k).reshape(n_groups, k, k)
    out = []
    for g in range(n_groups):
        n = int(tables[g].sum())
        if n < min_n:
            out.append(undefined(f"Fewer than {min_n} images in this period.", n=n))
            continue
        est = kappa_from_table(tables[g], confidence=confidence)
        est["exact"] = finite(np.trace(tables[g]) / n) if n else None
        out.append(est)
    return out


# --- Fleiss' kappa ----------------------------------------------------------------------------------------------------


def fleiss_counts(ratings: np.ndarray, k: int) -> np.ndarray:
    """Subjects x raters category indices (no missing values) → subjects x categories counts."""
    ratings = np.asarray(ratings, dtype=np.int64)
    n_subjects, n_raters = ratings.shape
    rows = np.repeat(np.arange(n_subjects), n_raters)
    return np.bincount(rows * k + ratings.ravel(), minlength=n_subjects * k).reshape(n_subjects, k)


def _fleiss_parts(p_bar, p_j):
    p_e = (p_j**2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (p_bar - p_e) / (1 - p_e), p_e


def fleiss_kappa(
    counts,
    *,
    confidence: float = CONFIDENCE,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """Fleiss' kappa (1971) of a subjects x categories table of counts (every subject rated by the same number of
    raters), with a percentile bootstrap interval over subjects."""
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 2 or c.shape[0] == 0:
        return undefined("No image was rated by every selected rater.", n=0)
    m_per = c.sum(axis=1)
    m = int(m_per[0])
    if not np.all(m_per == m):
        raise ValueError("Every subject must have the same number of ratings.")
    n_subjects = c.shape[0]
    if m < 2:
        return undefined("Fleiss' kappa needs at least two ratings per image.", n=n_subjects, raters=m)
    profiles, freq = np.unique(c, axis=0, return_counts=True)
    p_i = ((profiles**2).sum(axis=1) - m) / (m * (m - 1))
    p_bar = float((freq * p_i).sum() / n_subjects)
    p_j = (freq[:, None] * profiles).sum(axis=0) / (n_subjects * m)
    value, p_e = _fleiss_parts(p_bar, p_j)
    if 1 - p_e <= 1e-12:
        return undefined(
            "Every rater gave every image the same grade: chance agreement is 100% and kappa is undefined.",
            n=n_subjects,
            raters=m,
        )
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_subjects, freq / n_subjects, size=n_boot)  # resampled profile counts
    pb = draws @ p_i / n_subjects
    pj = draws @ profiles / (n_subjects * m)
    kb, _ = _fleiss_parts(pb, pj)
    kb = kb[np.isfinite(kb)]
    alpha = (1 - confidence) / 2
    method = FLEISS_METHOD.format(b=n_boot, seed=seed)
    if kb.size < n_boot * 0.5:
        return estimate(
            value,
            n=n_subjects,
            raters=m,
            method=method,
            band=landis_koch(value),
            ci_reason="Too few resamples had a defined kappa for an interval.",
        )
    low, high = np.quantile(kb, [alpha, 1 - alpha])
    return estimate(
        value, low, high, se=finite(kb.std(ddof=1)), n=n_subjects, raters=m, method=method, band=landis_koch(value)
    )


# --- Diagnostic accuracy ----------------------------------------------------------------------------------------------


def binary_counts(truth, predicted) -> dict:
    """tp / fp / tn / fn of boolean arrays (reference, rater)."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    return {
        "tp": int((t & p).sum()),
        "fp": int((~t & p).sum()),
        "tn": int((~t & ~p).sum()),
        "fn": int((t & ~p).sum()),
    }


def diagnostic(tp: int, fp: int, tn: int, fn: int, *, confidence: float = CONFIDENCE) -> dict:
    """Sensitivity, specificity, PPV, NPV, accuracy and prevalence with Wilson intervals."""
    n = tp + fp + tn + fn
    return {
        "n": n,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": proportion(
            tp,
            tp + fn,
            reason="No referable cases in the reference: sensitivity is undefined.",
            confidence=confidence,
        ),
        "specificity": proportion(
            tn,
            tn + fp,
            reason="No non-referable cases in the reference: specificity is undefined.",
            confidence=confidence,
        ),
        "ppv": proportion(
            tp,
            tp + fp,
            reason="The rater called no case referable: PPV is undefined.",
            confidence=confidence,
        ),
        "npv": proportion(
            tn,
            tn + fn,
            reason="The rater called no case non-referable: NPV is undefined.",
            confidence=confidence,
        ),
        "accuracy": proportion(tp + tn, n, reason="No cases.", confidence=confidence),
        "prevalence": proportion(tp + fn, n, reason="No cases.", confidence=confidence),
    }


def roc_curve(truth, scores, *, max_points: int | None = None) -> dict:
    """ROC points (rule: positive when score ≥ threshold). Collinear intermediate points are dropped (the curve is
    unchanged); ``max_points`` thins a longer curve for display (the AUC is never computed from the thinned curve).

    Returns ``{"fpr", "tpr", "thresholds", "thinned"}``; the first point (0, 0) has threshold None (above every
    score)."""
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s = s[order]
    y = y[order]
    if s.size == 0:
        return {"fpr": [0.0], "tpr": [0.0], "thresholds": [None], "thinned": False}
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[distinct].astype(float)
    fps = (distinct + 1 - tps).astype(float)
    thresholds = s[distinct]
    if tps.size > 2:
        keep = np.nonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps = np.r_[0.0, tps]
    fps = np.r_[0.0, fps]
    thresholds = np.r_[np.nan, thresholds]
    pos, neg = tps[-1], fps[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = tps / pos if pos else np.zeros_like(tps)
        fpr = fps / neg if neg else np.zeros_like(fps)
    thinned = False
    if max_points and tpr.size > max_points:
        idx = np.unique(np.round(np.linspace(0, tpr.size - 1, max_points)).astype(int))
        tpr, fpr, thresholds = tpr[idx], fpr[idx], thresholds[idx]
        thinned = True
    return {
        "fpr": [float(v) for v in fpr],
        "tpr": [float(v) for v in tpr],
        "thresholds": [finite(v) for v in thresholds],
        "thinned": thinned,
    }


def auc_delong(truth, scores, *, confidence: float = CONFIDENCE) -> dict:
    """Area under the ROC curve (ties count one half) with the DeLong 95% interval."""
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    m = int(y.sum())
    n = int((~y).sum())
    if m == 0:
        return undefined("No referable cases in the reference: the AUC is undefined.", positives=m, negatives=n)
    if n == 0:
        return undefined("No non-referable cases in the reference: the AUC is undefined.", positives=m, negatives=n)
    x = s[y]
    z = s[~y]
    tz = sps.rankdata(np.r_[x, z])  # midranks in the pooled sample
    tx = sps.rankdata(x)
    ty = sps.rankdata(z)
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    if m < 2 or n < 2:
        return estimate(
            auc,
            positives=m,
            negatives=n,
            method=DELONG_METHOD,
            ci_reason="The interval needs at least two cases in each class.",
        )
    v10 = (tz[:m] - tx) / n
    v01 = 1 - (tz[m:] - ty) / m
    var = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    se = math.sqrt(max(float(var), 0.0))
    zq = _z(confidence)
    return estimate(
        auc,
        max(0.0, auc - zq * se),
        min(1.0, auc + zq * se),
        se=finite(se),
        positives=m,
        negatives=n,
        method=DELONG_METHOD,
    )


def threshold_table(truth, scores, thresholds, *, confidence: float = CONFIDENCE) -> list[dict]:
    """Counts and accuracy at each threshold (positive when score ≥ threshold), vectorised; for the explorer."""
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    t = np.asarray(thresholds, dtype=float)
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    fn = pos.size - tp
    tn = neg.size - fp
    sens, sens_lo, sens_hi = wilson_arrays(tp, tp + fn, confidence)
    spec, spec_lo, spec_hi = wilson_arrays(tn, tn + fp, confidence)
    ppv, _, _ = wilson_arrays(tp, tp + fp, confidence)
    npv, _, _ = wilson_arrays(tn, tn + fn, confidence)
    rows = []
    for i, thr in enumerate(t):
        rows.append(
            {
                "threshold": finite(thr),
                "tp": int(tp[i]),
                "fp": int(fp[i]),
                "tn": int(tn[i]),
                "fn": int(fn[i]),
                "sensitivity": finite(sens[i]),
                "sensitivity_low": finite(sens_lo[i]),
                "sensitivity_high": finite(sens_hi[i]),
                "specificity": finite(spec[i]),
                "specificity_low": finite(spec_lo[i]),
                "specificity_high": finite(spec_hi[i]),
                "ppv": finite(ppv[i]),
                "npv": finite(npv[i]),
                "youden": finite(sens[i] + spec[i] - 1),
            }
        )
    return rows


def youden_optimum(truth, scores) -> dict | None:
    """The threshold (among the observed scores) that maximises sensitivity + specificity - 1."""
    y = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=float)
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    if not y.any() or y.all():
        return None
    candidates = np.unique(s)
    rows = threshold_table(y, s, candidates)
    best = max(rows, key=lambda r: (r["youden"], r["threshold"]))
    return best
