"""Every statistic of grading.quality.stats checked against a reference implementation (scikit-learn, statsmodels)
or a brute-force definition, on seeded random data with ties, missing grades and single-class edge cases."""

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from grading.quality import stats

SEEDS = range(60)


def _dumps(obj) -> str:
    """JSON as the API writes it: NaN or infinity would raise here."""
    return json.dumps(obj, allow_nan=False)


def _random_pairs(rng, n, k, missing=0.1, agreement=0.6):
    a = rng.integers(0, k, size=n)
    noise = rng.integers(-1, 2, size=n)
    b = np.where(rng.random(n) < agreement, a, np.clip(a + noise, 0, k - 1))
    b = np.where(rng.random(n) < 0.15, rng.integers(0, k, size=n), b)
    a = np.where(rng.random(n) < missing, -1, a)
    b = np.where(rng.random(n) < missing, -1, b)
    return a, b


def _sk_kappa(a, b, k, weights=None):
    keep = (a >= 0) & (b >= 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cohen_kappa_score(a[keep], b[keep], labels=list(range(k)), weights=weights)


# --- Cohen's kappa ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_kappa_matches_sklearn(weights):
    checked = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        k = int(rng.integers(2, 7))
        n = int(rng.integers(3, 400))
        a, b = _random_pairs(rng, n, k)
        ours = stats.kappa(a, b, k, weights=weights)
        ref = _sk_kappa(a, b, k, weights)
        _dumps(ours)
        if math.isnan(ref):
            assert ours["value"] is None and ours["reason"]
            continue
        assert ours["value"] == pytest.approx(ref, abs=1e-12)
        assert ours["n"] == int(((a >= 0) & (b >= 0)).sum())
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("wt", [None, "linear", "quadratic"])
def test_kappa_standard_error_matches_statsmodels(wt):
    """Fleiss, Cohen & Everitt (1969) large-sample SE; statsmodels implements the same (SAS) formula."""
    for seed in SEEDS:
        rng = np.random.default_rng(1000 + seed)
        k = int(rng.integers(2, 6))
        a, b = _random_pairs(rng, int(rng.integers(20, 500)), k, missing=0.05)
        table = stats.confusion_matrix(a, b, k)
        ours = stats.kappa_from_table(table, weights=wt)
        if ours["value"] is None:
            continue
        ref = sm_cohens_kappa(table, wt=wt) if wt else sm_cohens_kappa(table)
        assert ours["value"] == pytest.approx(ref.kappa, abs=1e-12)
        assert ours["se"] == pytest.approx(ref.std_kappa, rel=1e-9, abs=1e-12)
        z = 1.959963984540054
        assert ours["low"] == pytest.approx(max(-1, ref.kappa - z * ref.std_kappa), abs=1e-9)
        assert ours["high"] == pytest.approx(min(1, ref.kappa + z * ref.std_kappa), abs=1e-9)


def test_weighted_kappa_uses_ordinal_scores():
    """Unevenly spaced ordinal scores: the weights follow the scores (statsmodels with 1-D weights does the same)."""
    scores = [0, 1, 3, 4]
    for seed in range(20):
        rng = np.random.default_rng(2000 + seed)
        a, b = _random_pairs(rng, 300, 4)
        table = stats.confusion_matrix(a, b, 4)
        for wt in ("linear", "quadratic"):
            ours = stats.kappa_from_table(table, weights=wt, scores=scores)
            ref = sm_cohens_kappa(table, weights=np.array(scores, float), wt=wt)
            assert ours["value"] == pytest.approx(ref.kappa, abs=1e-12)
            assert ours["se"] == pytest.approx(ref.std_kappa, rel=1e-9)


def test_consecutive_scores_equal_default_weights():
    rng = np.random.default_rng(7)
    a, b = _random_pairs(rng, 500, 5)
    plain = stats.kappa(a, b, 5, weights="quadratic")
    shifted = stats.kappa(a, b, 5, weights="quadratic", scores=[10, 11, 12, 13, 14])
    assert plain["value"] == pytest.approx(shifted["value"])
    assert plain["se"] == pytest.approx(shifted["se"])


def test_kappa_bootstrap_interval_is_reproducible_and_close_to_analytic():
    rng = np.random.default_rng(11)
    a, b = _random_pairs(rng, 3000, 5, missing=0)
    analytic = stats.kappa(a, b, 5, weights="linear")
    boot = stats.kappa(a, b, 5, weights="linear", ci="bootstrap")
    again = stats.kappa(a, b, 5, weights="linear", ci="bootstrap")
    assert boot == again
    assert boot["value"] == analytic["value"]
    assert boot["low"] < boot["value"] < boot["high"]
    assert boot["low"] == pytest.approx(analytic["low"], abs=0.01)
    assert boot["high"] == pytest.approx(analytic["high"], abs=0.01)
    assert boot["se"] == pytest.approx(analytic["se"], rel=0.1)
    assert "bootstrap" in boot["method"].lower()


def test_kappa_undefined_cases_are_reported_not_nan():
    one_class = stats.kappa([1, 1, 1, 1], [1, 1, 1, 1], 3)
    assert one_class["value"] is None and "same grade" in one_class["reason"]
    none = stats.kappa([0, -1, 2], [-1, 1, -1], 3)
    assert none["value"] is None and none["n"] == 0 and "No images" in none["reason"]
    empty = stats.kappa([], [], 3)
    assert empty["value"] is None
    with_none = stats.kappa([0, None, 1, 1, 0], [0, 1, None, 1, 1], 2)
    assert with_none["n"] == 3
    for result in (one_class, none, empty, with_none):
        _dumps(result)
    # Perfect agreement on two used categories: defined, zero SE.
    perfect = stats.kappa([0, 1, 0, 1], [0, 1, 0, 1], 2)
    assert perfect["value"] == 1 and perfect["low"] == 1 and perfect["high"] == 1


def test_kappa_with_one_rater_constant_is_zero():
    # One rater always says 0, the other varies: p_e < 1, kappa defined (and 0 here).
    result = stats.kappa([0, 0, 0, 0], [0, 1, 0, 1], 2)
    assert result["value"] == pytest.approx(_sk_kappa(np.array([0, 0, 0, 0]), np.array([0, 1, 0, 1]), 2))


def test_landis_koch_bands():
    cases = {
        -0.3: "poor",
        0.0: "poor",
        0.01: "slight",
        0.2: "slight",
        0.21: "fair",
        0.4: "fair",
        0.41: "moderate",
        0.6: "moderate",
        0.61: "substantial",
        0.8: "substantial",
        0.81: "almost perfect",
        1.0: "almost perfect",
    }
    for value, band in cases.items():
        assert stats.landis_koch(value) == band, value
    assert stats.landis_koch(None) is None
    assert stats.landis_koch(float("nan")) is None


# --- Agreement summary -----------------------------------------------------------------------------------------------


def test_agreement_summary_matches_brute_force():
    for seed in range(30):
        rng = np.random.default_rng(3000 + seed)
        k = 6  # five ordered grades (0-4) and "ungradable" (index 5)
        a, b = _random_pairs(rng, int(rng.integers(10, 600)), k)
        scores = [0, 1, 2, 3, 4, -1]
        ordinal = [True] * 5 + [False]
        result = stats.agreement_summary(a, b, k, scores=scores, ordinal=ordinal)
        _dumps(result)
        keep = (a >= 0) & (b >= 0)
        aa, bb = a[keep], b[keep]
        assert result["n"] == keep.sum()
        assert result["exact"]["x"] == int((aa == bb).sum())
        both_scale = (aa < 5) & (bb < 5)
        assert result["n_ordinal"] == int(both_scale.sum())
        assert result["within_one"]["x"] == int((np.abs(aa - bb)[both_scale] <= 1).sum())
        ref = _sk_kappa(a, b, k)
        assert result["kappa"]["value"] == pytest.approx(ref)
        sub_a, sub_b = aa[both_scale], bb[both_scale]
        ref_q = _sk_kappa(sub_a, sub_b, 5, "quadratic")
        assert result["kappa_quadratic"]["value"] == pytest.approx(ref_q)
        assert result["kappa_linear"]["value"] == pytest.approx(_sk_kappa(sub_a, sub_b, 5, "linear"))
        assert np.array_equal(np.array(result["confusion"]), stats.confusion_matrix(a, b, k))
        low, high = proportion_confint(result["exact"]["x"], result["n"], method="wilson")
        assert result["exact"]["low"] == pytest.approx(low) and result["exact"]["high"] == pytest.approx(high)
        assert result["band"] == stats.landis_koch(ref)


def test_within_one_is_undefined_on_a_two_level_scale():
    result = stats.agreement_summary([0, 1, 1, 0], [0, 1, 0, 0], 2)
    assert result["within_one"]["value"] is None
    assert "two levels" in result["within_one"]["reason"]


def test_kappa_by_group_equals_kappa_per_group():
    rng = np.random.default_rng(5)
    a, b = _random_pairs(rng, 2000, 4)
    groups = rng.integers(0, 6, size=2000)
    series = stats.kappa_by_group(groups, a, b, 4, 6, min_n=5)
    for g in range(6):
        mask = groups == g
        expected = stats.kappa(a[mask], b[mask], 4)
        assert series[g]["value"] == pytest.approx(expected["value"])
        assert series[g]["low"] == pytest.approx(expected["low"])
    few = stats.kappa_by_group([0, 1], [0, 1], [0, 1], 2, 3, min_n=5)
    assert all(entry["value"] is None for entry in few)


# --- Fleiss' kappa ---------------------------------------------------------------------------------------------------


def test_fleiss_kappa_matches_statsmodels():
    checked = 0
    for seed in SEEDS:
        rng = np.random.default_rng(4000 + seed)
        k = int(rng.integers(2, 6))
        raters = int(rng.integers(3, 6))
        subjects = int(rng.integers(5, 300))
        truth = rng.integers(0, k, size=subjects)
        ratings = np.where(rng.random((subjects, raters)) < 0.7, truth[:, None], rng.integers(0, k, (subjects, raters)))
        counts = stats.fleiss_counts(ratings, k)
        ours = stats.fleiss_kappa(counts, n_boot=300)
        _dumps(ours)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = sm_fleiss_kappa(counts, method="fleiss")
        if math.isnan(ref):
            assert ours["value"] is None
            continue
        assert ours["value"] == pytest.approx(ref, abs=1e-12)
        assert ours["n"] == subjects and ours["raters"] == raters
        assert ours["low"] <= ours["value"] + 1e-9 and ours["high"] >= ours["value"] - 1e-9
        checked += 1
    assert checked > 50


def test_fleiss_bootstrap_interval_covers_a_known_kappa():
    """Coverage check of the interval on simulated raters with a fixed true agreement structure."""
    rng = np.random.default_rng(99)
    big = rng.integers(0, 3, size=200_000)
    pop = np.where(rng.random((200_000, 3)) < 0.6, big[:, None], rng.integers(0, 3, (200_000, 3)))
    true_kappa = stats.fleiss_kappa(stats.fleiss_counts(pop, 3), n_boot=10)["value"]
    covered = 0
    for _ in range(40):
        idx = rng.integers(0, 200_000, size=300)
        result = stats.fleiss_kappa(stats.fleiss_counts(pop[idx], 3), n_boot=400, seed=int(rng.integers(1e9)))
        covered += result["low"] <= true_kappa <= result["high"]
    assert covered >= 34  # 95% nominal; 34/40 leaves room for sampling noise


def test_fleiss_undefined_cases():
    same = stats.fleiss_kappa(stats.fleiss_counts(np.zeros((5, 3), dtype=int), 2))
    assert same["value"] is None and "same grade" in same["reason"]
    empty = stats.fleiss_kappa(np.zeros((0, 3), dtype=int))
    assert empty["value"] is None
    single = stats.fleiss_kappa(np.array([[1, 0], [0, 1]]))
    assert single["value"] is None and "two ratings" in single["reason"]
    for r in (same, empty, single):
        _dumps(r)


# --- Proportions -----------------------------------------------------------------------------------------------------


def test_wilson_matches_statsmodels():
    rng = np.random.default_rng(6)
    cases = [(0, 1), (1, 1), (0, 10), (10, 10), (5, 10), (1, 3)] + [
        (int(x), int(n)) for n in rng.integers(1, 5000, 100) for x in [rng.integers(0, n + 1)]
    ]
    for x, n in cases:
        ours = stats.proportion(x, n)
        low, high = proportion_confint(x, n, alpha=0.05, method="wilson")
        assert ours["value"] == pytest.approx(x / n)
        assert ours["low"] == pytest.approx(low, abs=1e-12)
        assert ours["high"] == pytest.approx(high, abs=1e-12)
        assert ours["low"] <= ours["value"] <= ours["high"]  # exactly, even at x = 0 and x = n
    other = stats.proportion(30, 40, confidence=0.9)
    low, high = proportion_confint(30, 40, alpha=0.1, method="wilson")
    assert other["low"] == pytest.approx(low) and other["high"] == pytest.approx(high)


def test_proportion_with_zero_denominator_is_undefined():
    result = stats.proportion(0, 0, reason="No referable cases.")
    assert result == {"value": None, "low": None, "high": None, "reason": "No referable cases.", "x": 0, "n": 0}


def test_diagnostic_metrics_and_undefined_cases():
    rng = np.random.default_rng(8)
    truth = rng.random(500) < 0.3
    pred = np.where(rng.random(500) < 0.85, truth, ~truth)
    counts = stats.binary_counts(truth, pred)
    result = stats.diagnostic(**counts)
    _dumps(result)
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    assert result["sensitivity"]["value"] == pytest.approx(tp / (tp + fn))
    assert result["specificity"]["value"] == pytest.approx(tn / (tn + fp))
    assert result["ppv"]["value"] == pytest.approx(tp / (tp + fp))
    assert result["npv"]["value"] == pytest.approx(tn / (tn + fn))
    for key, (x, n) in {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp)}.items():
        low, high = proportion_confint(x, n, method="wilson")
        assert result[key]["low"] == pytest.approx(low) and result[key]["high"] == pytest.approx(high)

    no_positives = stats.diagnostic(tp=0, fp=3, tn=10, fn=0)
    _dumps(no_positives)
    assert no_positives["sensitivity"]["value"] is None
    assert "No referable cases" in no_positives["sensitivity"]["reason"]
    assert no_positives["ppv"]["value"] == 0.0
    nothing = stats.diagnostic(tp=0, fp=0, tn=0, fn=0)
    _dumps(nothing)
    assert all(nothing[key]["value"] is None for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy"))


# --- ROC and AUC -----------------------------------------------------------------------------------------------------


def _delong_brute_force(y, s):
    """DeLong et al. (1988) from the definition: placement values with psi = 1, 1/2, 0 (O(m n))."""
    x = s[y]
    z = s[~y]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    auc = psi.mean()
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    var = v10.var(ddof=1) / x.size + v01.var(ddof=1) / z.size
    return auc, math.sqrt(var)


def test_auc_and_delong_interval():
    for seed in SEEDS:
        rng = np.random.default_rng(5000 + seed)
        n = int(rng.integers(10, 600))
        y = rng.random(n) < rng.uniform(0.1, 0.6)
        if y.sum() < 2 or (~y).sum() < 2:
            continue
        # Rounded scores give many ties.
        s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), int(rng.integers(1, 4)))
        ours = stats.auc_delong(y, s)
        _dumps(ours)
        assert ours["value"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        auc, se = _delong_brute_force(y, s)
        assert ours["value"] == pytest.approx(auc, abs=1e-12)
        assert ours["se"] == pytest.approx(se, rel=1e-9)
        assert ours["low"] == pytest.approx(max(0, auc - 1.959963984540054 * se))
        assert ours["high"] == pytest.approx(min(1, auc + 1.959963984540054 * se))


def test_auc_undefined_cases():
    no_pos = stats.auc_delong([False, False], [0.1, 0.5])
    assert no_pos["value"] is None and "No referable" in no_pos["reason"]
    no_neg = stats.auc_delong([True, True], [0.1, 0.5])
    assert no_neg["value"] is None and "No non-referable" in no_neg["reason"]
    tiny = stats.auc_delong([True, False], [0.9, 0.1])
    assert tiny["value"] == 1.0 and tiny["low"] is None and tiny["ci_reason"]
    nan_scores = stats.auc_delong([True, False, True, False], [0.9, float("nan"), 0.8, 0.2])
    assert nan_scores["value"] == 1.0
    for r in (no_pos, no_neg, tiny, nan_scores):
        _dumps(r)


def test_roc_curve_matches_sklearn():
    for seed in range(30):
        rng = np.random.default_rng(6000 + seed)
        n = int(rng.integers(5, 800))
        y = rng.random(n) < 0.4
        if not y.any() or y.all():
            continue
        s = np.round(rng.random(n) * 0.6 + 0.4 * y, 2)
        ours = stats.roc_curve(y, s)
        _dumps(ours)
        fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=True)
        assert np.allclose(ours["fpr"], fpr) and np.allclose(ours["tpr"], tpr)
        assert ours["thresholds"][0] is None
        assert np.allclose(ours["thresholds"][1:], thr[1:])
        # Trapezoidal area of the (unthinned) curve equals the AUC.
        assert np.trapezoid(ours["tpr"], ours["fpr"]) == pytest.approx(roc_auc_score(y, s))


def test_roc_curve_thinning_keeps_the_ends():
    rng = np.random.default_rng(1)
    y = rng.random(20_000) < 0.3
    s = rng.random(20_000) + 0.3 * y
    curve = stats.roc_curve(y, s, max_points=200)
    assert curve["thinned"] and len(curve["fpr"]) <= 200
    assert curve["fpr"][0] == 0 and curve["tpr"][0] == 0
    assert curve["fpr"][-1] == 1 and curve["tpr"][-1] == 1
    assert stats.roc_curve([], [])["fpr"] == [0.0]
    single_class = stats.roc_curve([True, True], [0.2, 0.4])
    _dumps(single_class)


def test_threshold_table_matches_brute_force():
    rng = np.random.default_rng(12)
    y = rng.random(700) < 0.35
    s = np.round(rng.random(700) * 0.7 + 0.3 * y, 2)
    thresholds = np.round(np.arange(0, 1.0001, 0.05), 2)
    rows = stats.threshold_table(y, s, thresholds)
    _dumps(rows)
    for row, t in zip(rows, thresholds, strict=True):
        pred = s >= t
        c = stats.binary_counts(y, pred)
        assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (c["tp"], c["fp"], c["tn"], c["fn"])
        d = stats.diagnostic(**c)
        for key in ("sensitivity", "specificity", "ppv", "npv"):
            assert row[key] == (pytest.approx(d[key]["value"]) if d[key]["value"] is not None else None)
        assert row["sensitivity_low"] == pytest.approx(d["sensitivity"]["low"])
    best = stats.youden_optimum(y, s)
    brute = max(
        (float(t) for t in np.unique(s)),
        key=lambda t: (((s >= t) & y).sum() / y.sum() + ((s < t) & ~y).sum() / (~y).sum(), t),
    )
    assert best["threshold"] == pytest.approx(brute)
    assert stats.youden_optimum([True, True], [0.1, 0.2]) is None
