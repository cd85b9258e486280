"""Quality figures computed from grades in the database, checked against scikit-learn and statsmodels on the same
grades: agreement per pair and Fleiss' kappa, each rater against the consensus (thresholds on the ordinal scale,
units of analysis, handling of ungradable images), grader monitoring, and the cache per selection."""

import datetime as dt
import json
import warnings

import numpy as np
import pytest
from django.http import Http404
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from accounts.models import Role
from grading.models import Consensus, ConsensusMethod, Grade, GraderType
from grading.quality import selectors
from grading.quality.selection import AGREEMENT, MONITORING, PERFORMANCE, SelectionError, parse
from tests.factories import LabUnitFactory
from tests.quality.conftest import month

SCALE = ["0", "1", "2", "3", "4"]
REFERABLE = {"2", "3", "4"}


def _json(obj):
    """As the API writes it: a NaN or an infinity would raise."""
    return json.loads(json.dumps(obj, allow_nan=False))


def _sk_kappa(a, b, weights=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cohen_kappa_score(a, b, labels=SCALE, weights=weights)


def _wilson(x, n):
    return proportion_confint(x, n, alpha=0.05, method="wilson")


def _grade_matrix(seed, n_images, raters, *, rng, missing=0.15, ungradable=0.05, **image_kwargs):
    """Random grades with ties, missing grades and ungradable ones; returns {rater: [code or None per image]}."""
    truth = rng.integers(0, 5, size=n_images)
    table = {}
    for name in raters:
        noise = rng.integers(-1, 2, size=n_images)
        codes = np.where(rng.random(n_images) < 0.65, truth, np.clip(truth + noise, 0, 4)).astype(str).tolist()
        for i in range(n_images):
            r = rng.random()
            if r < missing:
                codes[i] = None
            elif r < missing + ungradable:
                codes[i] = "U"
        table[name] = codes
    images = [seed.image(**image_kwargs) for _ in range(n_images)]
    for grader_type, codes in table.items():
        user = seed.user(f"{grader_type}-grader")
        for image, code in zip(images, codes, strict=True):
            if code is not None:
                seed.grade(image, grader_type, code, grader=user)
    return images, table


def _gradable_pairs(table, a, b):
    pairs = [(x, y) for x, y in zip(table[a], table[b], strict=True) if x not in (None, "U") and y not in (None, "U")]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# --- Agreement -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rng_seed", [3, 11])
def test_agreement_per_pair_and_fleiss_match_references(seed, manager, rng_seed):
    rng = np.random.default_rng(rng_seed)
    raters = ["primary", "secondary", "resident"]
    _, table = _grade_matrix(seed, 70, raters, rng=rng)
    sel = parse(manager, {"disease": "DR"}, kind=AGREEMENT)
    data = _json(selectors.agreement(sel))

    assert [(p["a"], p["b"]) for p in data["pairs"]] == [
        ("primary", "secondary"),
        ("primary", "resident"),
        ("secondary", "resident"),
    ]
    for pair in data["pairs"]:
        a, b = _gradable_pairs(table, pair["a"], pair["b"])
        assert pair["n"] == len(a)
        exact = sum(x == y for x, y in zip(a, b, strict=True))
        within = sum(abs(int(x) - int(y)) <= 1 for x, y in zip(a, b, strict=True))
        assert pair["exact"] == pytest.approx(exact / len(a))
        assert (pair["ci"]["exact"]["low"], pair["ci"]["exact"]["high"]) == pytest.approx(_wilson(exact, len(a)))
        assert pair["within_one"] == pytest.approx(within / len(a))
        assert pair["kappa"] == pytest.approx(_sk_kappa(a, b), abs=1e-12)
        assert pair["kappa_linear"] == pytest.approx(_sk_kappa(a, b, "linear"), abs=1e-12)
        assert pair["kappa_quadratic"] == pytest.approx(_sk_kappa(a, b, "quadratic"), abs=1e-12)
        for key in ("kappa", "kappa_linear", "kappa_quadratic"):
            assert pair["ci"][key]["low"] < pair[key] < pair["ci"][key]["high"]
        both_graded = sum(
            x is not None and y is not None for x, y in zip(table[pair["a"]], table[pair["b"]], strict=True)
        )
        assert pair["excluded_ungradable"] == both_graded - len(a)
        # Confusion matrix: rows rater a, columns rater b, in the scheme's order (0 … 4, then U).
        expected = np.zeros((6, 6), dtype=int)
        for x, y in zip(a, b, strict=True):
            expected[int(x), int(y)] += 1
        assert pair["confusion"] == expected.tolist()
        assert pair["band"] in {"poor", "slight", "fair", "moderate", "substantial", "almost perfect"} or pair["band"]

    # Fleiss' kappa over the images every rater graded on the scale.
    rows = [
        [int(table[r][i]) for r in raters] for i in range(70) if all(table[r][i] not in (None, "U") for r in raters)
    ]
    counts, _ = aggregate_raters(np.array(rows), n_cat=5)
    fleiss = data["fleiss_kappa"]
    assert fleiss["n"] == len(rows)
    assert fleiss["raters"] == 3
    assert fleiss["value"] == pytest.approx(sm_fleiss_kappa(counts, method="fleiss"), abs=1e-12)
    assert fleiss["low"] <= fleiss["value"] <= fleiss["high"]
    assert data["n"] == sum(sum(table[r][i] not in (None, "U") for r in raters) >= 2 for i in range(70))


def test_fleiss_is_undefined_with_two_raters_and_named_graders_are_raters(seed, manager):
    alice, bob = seed.user("alice", Role.OPHTHALMOLOGIST), seed.user("bob")
    pairs = [("0", "0"), ("2", "2"), ("3", "2"), ("1", "0"), ("4", "4"), ("0", "1"), ("2", "3")]
    for a, b in pairs:
        image = seed.image()
        seed.grade(image, "secondary", a, grader=alice)
        seed.grade(image, "primary", b, grader=bob)
    sel = parse(manager, {"rater": "alice,user:bob"}, kind=AGREEMENT)
    data = _json(selectors.agreement(sel))
    [pair] = data["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == ("alice", "bob", len(pairs))
    assert pair["kappa"] == pytest.approx(_sk_kappa([a for a, _ in pairs], [b for _, b in pairs]))
    assert data["fleiss_kappa"]["value"] is None
    assert "more than two raters" in data["fleiss_kappa"]["reason"]


def test_ungradable_counted_as_a_category(seed, manager):
    grades = [("0", "0"), ("U", "U"), ("U", "1"), ("2", "2"), ("3", "U"), ("1", "1"), ("4", "3")]
    for a, b in grades:
        image = seed.image()
        seed.grade(image, "primary", a)
        seed.grade(image, "secondary", b)
    excluded = _json(selectors.agreement(parse(manager, {}, kind=AGREEMENT)))["pairs"][0]
    category = _json(selectors.agreement(parse(manager, {"ungradable": "category"}, kind=AGREEMENT)))["pairs"][0]
    gradable = [(a, b) for a, b in grades if "U" not in (a, b)]
    assert excluded["n"] == len(gradable) and excluded["excluded_ungradable"] == 3
    assert category["n"] == len(grades) and category["excluded_ungradable"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nominal = cohen_kappa_score([a for a, _ in grades], [b for _, b in grades], labels=[*SCALE, "U"])
    assert category["kappa"] == pytest.approx(nominal, abs=1e-12)
    # Weighted kappa and "within one step" stay on the ordinal scale: ungradable is off it.
    assert category["n_ordinal"] == len(gradable)
    a, b = zip(*gradable, strict=True)
    assert category["kappa_quadratic"] == pytest.approx(_sk_kappa(list(a), list(b), "quadratic"), abs=1e-12)


def test_undefined_kappa_is_null_with_a_reason(seed, manager):
    for _ in range(4):
        image = seed.image()
        seed.grade(image, "primary", "0")
        seed.grade(image, "secondary", "0")
    data = _json(selectors.agreement(parse(manager, {}, kind=AGREEMENT)))
    pair = data["pairs"][0]
    assert pair["exact"] == 1.0
    assert pair["kappa"] is None and pair["ci"]["kappa"] == {"low": None, "high": None}
    assert pair["reasons"]["kappa"]


def test_agreement_without_two_raters_says_why(seed, manager):
    seed.grade(seed.image(), "primary", "2")
    data = _json(selectors.agreement(parse(manager, {}, kind=AGREEMENT)))
    assert data["pairs"] == [] and data["n"] == 0
    assert "at least two raters" in data["reason"]


def test_selection_filters_dates_dataset_lab_unit_and_scope(seed, manager, lab_unit):
    def graded_pair(when=None, **kwargs):
        image = seed.image(**kwargs)
        seed.grade(image, "primary", "2", when=when)
        seed.grade(image, "secondary", "2", when=when)

    graded_pair(when=month(2026, 1))
    graded_pair(when=month(2026, 3), dataset_label="trial-a")
    graded_pair(when=month(2026, 3, 31))
    graded_pair(lab_unit=LabUnitFactory())  # outside the manager's lab units: never counted

    def n(**params):
        return selectors.agreement(parse(manager, params, kind=AGREEMENT))["pairs"][0]["n"]

    assert n() == 3
    assert n(date_from="2026-02-01") == 2
    assert n(date_from="2026-02-01", date_to="2026-03-30") == 1
    assert n(date_to="2026-03-31") == 3
    assert n(dataset="trial-a") == 1
    assert n(lab_unit=lab_unit.code, hospital=str(lab_unit.hospital_id)) == 3
    with pytest.raises(Http404):
        parse(manager, {"lab_unit": str(LabUnitFactory().pk)}, kind=AGREEMENT)


def test_agreement_over_time_per_month(seed, manager):
    for m, pairs in ((1, [("0", "0"), ("2", "3")]), (2, [("1", "1"), ("3", "3"), ("4", "2")]), (4, [("0", "0")])):
        for a, b in pairs:
            image = seed.image()
            seed.grade(image, "primary", a, when=month(2026, m))
            seed.grade(image, "secondary", b, when=month(2026, m, 20))
    series = selectors.agreement(parse(manager, {}, kind=AGREEMENT))["pairs"][0]["over_time"]
    assert [(s["month"], s["n"]) for s in series] == [("2026-01", 2), ("2026-02", 3), ("2026-04", 1)]
    assert series[1]["kappa"] == pytest.approx(_sk_kappa(["1", "3", "4"], ["1", "3", "2"]))
    assert series[2]["kappa"] is None and series[2]["reason"]


def test_agreement_months_are_those_of_the_local_time_zone(seed, manager, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30
    utc = dt.UTC
    for when in (dt.datetime(2026, 1, 31, 17, 0, tzinfo=utc), dt.datetime(2026, 1, 31, 19, 0, tzinfo=utc)):
        image = seed.image()
        seed.grade(image, "primary", "2", when=when)
        seed.grade(image, "secondary", "2", when=when)
    series = selectors.agreement(parse(manager, {}, kind=AGREEMENT))["pairs"][0]["over_time"]
    # 17:00 UTC is 22:30 on 31 January in India; 19:00 UTC is already 00:30 on 1 February.
    assert [(s["month"], s["n"]) for s in series] == [("2026-01", 1), ("2026-02", 1)]


def test_bad_parameters_say_what_is_allowed(seed, manager):
    with pytest.raises(SelectionError) as err:
        parse(
            manager,
            {"unit": "retina", "ungradable": "maybe", "threshold": "7", "date_from": "May", "rater": "nobody"},
            kind=PERFORMANCE,
        )
    errors = err.value.errors
    assert "image, eye, patient" in errors["unit"]
    assert "excluded, referable" in errors["ungradable"]
    assert "0, 1, 2, 3, 4" in errors["threshold"]
    assert "YYYY-MM-DD" in errors["date_from"]
    assert "'nobody'" in errors["rater"] and "ai:<model>:<version>" in errors["rater"]
    with pytest.raises(SelectionError) as err:
        parse(manager, {"unit": "patient"}, kind=AGREEMENT)
    assert "per image" in err.value.errors["unit"]
    with pytest.raises(SelectionError) as err:
        parse(manager, {"disease": "XYZ"}, kind=AGREEMENT)
    assert "DR" in err.value.errors["disease"]


# --- Performance against the consensus ------------------------------------------------------------------------------


def _ai_dataset(seed, n, rng, *, ungradable=0.06):
    """Consensus and AI grades with probabilities (ties included); returns rows (ref, ai code, probability)."""
    model = seed.ai_model("Screener", "2.1")
    rows = []
    for _ in range(n):
        image = seed.image()
        ref = str(rng.integers(0, 5)) if rng.random() > ungradable else "U"
        if ref in REFERABLE:
            prob = float(np.round(rng.uniform(0.35, 1.0), 1))
        else:
            prob = float(np.round(rng.uniform(0.0, 0.7), 1))
        code = "U" if rng.random() < ungradable else ("3" if prob >= 0.5 else "1")
        seed.grade(image, "ai", code, ai_model=model, probability=prob)
        seed.consensus(image, ref)
        rows.append((ref, code, prob))
    return model, rows


def _counts(pairs):
    tp = sum(r and s for r, s in pairs)
    fp = sum(s and not r for r, s in pairs)
    tn = sum(not r and not s for r, s in pairs)
    fn = sum(r and not s for r, s in pairs)
    return tp, fp, tn, fn


def test_ai_performance_matches_references(seed, manager):
    rng = np.random.default_rng(7)
    _, rows = _ai_dataset(seed, 90, rng)
    sel = parse(manager, {"rater": "ai:Screener:2.1"}, kind=PERFORMANCE, single_rater=True)
    data = _json(selectors.performance(sel, sel.raters[0]))

    kept = [(ref, code, prob) for ref, code, prob in rows if "U" not in (ref, code)]
    tp, fp, tn, fn = _counts([(ref in REFERABLE, code in REFERABLE) for ref, code, _ in kept])
    assert (data["n"], data["tp"], data["fp"], data["tn"], data["fn"]) == (len(kept), tp, fp, tn, fn)
    for key, x, n in (
        ("sensitivity", tp, tp + fn),
        ("specificity", tn, tn + fp),
        ("ppv", tp, tp + fp),
        ("npv", tn, tn + fn),
    ):
        assert data[key]["value"] == pytest.approx(x / n)
        assert (data[key]["low"], data[key]["high"]) == pytest.approx(_wilson(x, n))
    truth = [ref in REFERABLE for ref, _, _ in kept]
    scores = [prob for _, _, prob in kept]
    assert data["auc"]["value"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    assert data["auc"]["low"] < data["auc"]["value"] < data["auc"]["high"]
    assert data["roc"][0][:2] == [0.0, 0.0] and data["roc"][-1][:2] == [1.0, 1.0]
    assert all(len(point) == 3 for point in data["roc"])
    # Operating point of the grades, and the threshold explorer at 0.5 reproduces the grades' decisions.
    assert data["operating_point"] == pytest.approx({"fpr": fp / (fp + tn), "tpr": tp / (tp + fn)})
    at_half = next(row for row in data["thresholds"] if row["threshold"] == 0.5)
    assert (at_half["tp"], at_half["fp"], at_half["tn"], at_half["fn"]) == (tp, fp, tn, fn)
    # Share of gradable images.
    assert data["gradable"]["rater"]["value"] == pytest.approx(sum(c != "U" for _, c, _ in rows) / len(rows))
    assert data["gradable"]["reference"]["value"] == pytest.approx(sum(r != "U" for r, _, _ in rows) / len(rows))
    assert data["counts"]["excluded_ungradable"] == len(rows) - len(kept)


def test_ungradable_counted_as_referable(seed, manager):
    rng = np.random.default_rng(8)
    _, rows = _ai_dataset(seed, 60, rng, ungradable=0.15)
    sel = parse(manager, {"rater": "ai", "ungradable": "referable"}, kind=PERFORMANCE, single_rater=True)
    data = _json(selectors.performance(sel, sel.raters[0]))
    positive = REFERABLE | {"U"}
    tp, fp, tn, fn = _counts([(ref in positive, code in positive) for ref, code, _ in rows])
    assert (data["n"], data["tp"], data["fp"], data["tn"], data["fn"]) == (len(rows), tp, fp, tn, fn)
    assert data["counts"]["excluded_ungradable"] == 0
    assert "referable" in data["selection"]["ungradable_handling"].lower()


@pytest.mark.parametrize("threshold", ["1", "3", "4"])
def test_threshold_on_the_ordinal_scale(seed, manager, threshold):
    rng = np.random.default_rng(9)
    _, rows = _ai_dataset(seed, 60, rng)
    human = seed.user("reader")
    images = list(Grade.objects.filter(grader_type=GraderType.AI).order_by("id").values_list("image_id", flat=True))
    codes = [str(rng.integers(0, 5)) for _ in images]
    for image_id, code in zip(images, codes, strict=True):
        Grade.objects.create(
            image_id=image_id,
            disease_id=seed.scheme.disease_id,
            scheme=seed.scheme,
            option=seed.options[code],
            grader_type="primary",
            grader=human,
        )
    sel = parse(manager, {"rater": "primary", "threshold": threshold}, kind=PERFORMANCE, single_rater=True)
    data = _json(selectors.performance(sel, sel.raters[0]))
    kept = [(ref, code) for (ref, _, _), code in zip(rows, codes, strict=True) if ref != "U"]
    tp, fp, tn, fn = _counts([(int(ref) >= int(threshold), int(code) >= int(threshold)) for ref, code in kept])
    assert (data["tp"], data["fp"], data["tn"], data["fn"]) == (tp, fp, tn, fn)
    assert data["threshold"] == threshold and threshold in data["positive_means"]
    assert data["auc"]["value"] is None and "probabilit" in data["auc"]["reason"]
    assert data["roc"] == []


def test_units_of_analysis_eye_and_patient_worse_eye(seed, manager, patient_path):
    model = seed.ai_model()
    # (patient, eye, consensus, AI grade)
    images = [
        ("p1", "left", "0", "0"),
        ("p1", "left", "3", "1"),  # left eye of p1: reference positive (worst image), AI negative
        ("p1", "right", "0", "2"),  # right eye of p1: AI positive, reference negative
        ("p2", "left", "1", "1"),
        ("p2", "right", "1", "0"),
        ("p3", "right", "4", "4"),
        ("p3", "right", "0", "0"),
        ("p4", "left", "0", "0"),
    ]
    probabilities = [0.1, 0.4, 0.7, 0.2, 0.1, 0.9, 0.3, 0.05]
    for (patient, eye, ref, ai), prob in zip(images, probabilities, strict=True):
        image = seed.image(dataset_label=patient, area=eye)
        seed.grade(image, "ai", ai, ai_model=model, probability=prob)
        seed.consensus(image, ref)
    no_patient = seed.image(area="left")  # a patient of its own (an empty label here), with a single eye
    seed.grade(no_patient, "ai", "2", ai_model=model, probability=0.8)
    seed.consensus(no_patient, "2")

    def result(unit):
        sel = parse(manager, {"rater": "ai", "unit": unit}, kind=PERFORMANCE, single_rater=True)
        return _json(selectors.performance(sel, sel.raters[0]))

    image = result("image")
    assert (image["n"], image["tp"], image["fp"], image["tn"], image["fn"]) == (9, 2, 1, 5, 1)
    eye = result("eye")
    # Eyes: p1-L (ref+, ai-) FN, p1-R (ref-, ai+) FP, p2-L TN, p2-R TN, p3-R TP, p4-L TN, lone image TP.
    assert (eye["n"], eye["tp"], eye["fp"], eye["tn"], eye["fn"]) == (7, 2, 1, 3, 1)
    assert eye["counts"]["units"] == 7 and eye["counts"]["images_with_patient"] == 9
    patient = result("patient")
    # Patients (worse eye): p1 ref+ ai+ TP, p2 TN, p3 TP, p4 TN, lone image TP.
    assert (patient["n"], patient["tp"], patient["fp"], patient["tn"], patient["fn"]) == (5, 3, 0, 2, 0)
    # The AUC per patient uses the highest probability of each patient.
    truth = [True, False, True, False, True]
    scores = [0.7, 0.2, 0.9, 0.05, 0.8]
    assert patient["auc"]["value"] == pytest.approx(roc_auc_score(truth, scores))
    assert "worse eye" in patient["methods"]["unit"].lower()


def test_images_without_a_patient_count_as_a_patient_each(seed, manager, monkeypatch, camera):
    from grading.quality import units

    monkeypatch.setattr(units, "_paths", ["camera_id"])  # a nullable path: the camera stands in for the visit
    model = seed.ai_model()
    for with_visit, ref, ai in ((True, "3", "0"), (True, "0", "0"), (False, "3", "3"), (False, "0", "3")):
        image = seed.image(camera=camera if with_visit else None, area="left")
        seed.grade(image, "ai", ai, ai_model=model, probability=0.5)
        seed.consensus(image, ref)
    sel = parse(manager, {"rater": "ai", "unit": "patient"}, kind=PERFORMANCE, single_rater=True)
    data = selectors.performance(sel, sel.raters[0])
    # One visit (reference positive from its worse eye, AI negative: FN) and two images on their own (TP, FP).
    assert (data["n"], data["tp"], data["fp"], data["tn"], data["fn"]) == (3, 1, 1, 0, 1)
    assert data["counts"]["images_with_patient"] == 2


def test_grade_that_decided_the_reference_is_not_compared_with_it(seed, manager):
    reader = seed.user("reader")
    for code in ("0", "2", "3"):
        image = seed.image()
        grade = seed.grade(image, "primary", code, grader=reader)
        seed.consensus(image, code, method=ConsensusMethod.SINGLE_GRADER, grades=[grade])
    image = seed.image()
    grade = seed.grade(image, "primary", "1", grader=reader)
    other = seed.grade(image, "secondary", "2", grader=seed.user("other"))
    seed.consensus(image, "2", grades=[grade, other])
    sel = parse(manager, {"rater": "primary"}, kind=PERFORMANCE, single_rater=True)
    data = _json(selectors.performance(sel, sel.raters[0]))
    assert data["counts"]["self_reference"] == 3
    assert (data["n"], data["fn"]) == (1, 1)


def test_undefined_performance_is_null_with_reasons(seed, manager):
    model = seed.ai_model()
    for prob in (0.1, 0.2, 0.2):
        image = seed.image()
        seed.grade(image, "ai", "0", ai_model=model, probability=prob)
        seed.consensus(image, "0")
    sel = parse(manager, {"rater": "ai"}, kind=PERFORMANCE, single_rater=True)
    data = _json(selectors.performance(sel, sel.raters[0]))
    assert data["tn"] == 3
    assert data["sensitivity"]["value"] is None and data["sensitivity"]["reason"]
    assert data["ppv"]["value"] is None and data["ppv"]["reason"]
    assert data["specificity"]["value"] == 1.0
    assert data["auc"]["value"] is None and data["auc"]["reason"]
    empty = parse(manager, {"rater": "secondary"}, kind=PERFORMANCE, single_rater=True)
    nothing = _json(selectors.performance(empty, empty.raters[0]))
    assert nothing["n"] == 0 and nothing["sensitivity"]["reason"] and nothing["gradable"]["rater"]["reason"]


def test_ai_type_with_several_models_asks_which(seed, manager):
    image = seed.image()
    seed.grade(image, "ai", "2", ai_model=seed.ai_model("Screener", "1.0"), probability=0.6)
    seed.grade(image, "ai", "2", ai_model=seed.ai_model("Screener", "2.0"), probability=0.7)
    seed.consensus(image, "2")
    sel = parse(manager, {"rater": "ai"}, kind=PERFORMANCE, single_rater=True)
    with pytest.raises(SelectionError) as err:
        selectors.performance(sel, sel.raters[0])
    assert "ai:Screener:1.0" in str(err.value) and "ai:Screener:2.0" in str(err.value)
    overview = _json(selectors.performance_overview(parse(manager, {}, kind=PERFORMANCE)))
    assert {r["rater"]["token"] for r in overview["raters"]} == {"ai:Screener:1.0", "ai:Screener:2.0"}


def test_pregraded_imports_count_in_the_figures(seed, manager):
    """Grades imported with the pre-graded uploads (grading.services.grades_import_bulk) are figures like any other:
    resident2 grades record the imported reference, which AI imports are compared with."""
    from grading.services import grades_import_bulk

    rng = np.random.default_rng(12)
    images = [seed.image(is_pregraded=True) for _ in range(30)]
    first = [str(rng.integers(0, 5)) for _ in images]
    reference = [str(min(4, int(c) + int(rng.integers(0, 2)))) for c in first]
    probabilities = [round(float(rng.random()), 2) for _ in images]
    model = seed.ai_model("Imported", "3.0")

    def rows(codes, probs=None):
        return [
            {
                "image_id": image.pk,
                "option_id": seed.options[code].pk,
                "raw_value": code,
                "remarks": "",
                "probability": probs[i] if probs else None,
            }
            for i, (image, code) in enumerate(zip(images, codes, strict=True))
        ]

    common = {"disease": images[0].disease, "scheme": seed.scheme}
    grades_import_bulk(rows=rows(first), grader_type="resident", grader=seed.user("res-a"), **common)
    grades_import_bulk(
        rows=rows(reference), grader_type="resident2", grader=seed.user("res-b", Role.OPHTHALMOLOGIST), **common
    )
    ai_codes = ["3" if p >= 0.5 else "0" for p in probabilities]
    grades_import_bulk(rows=rows(ai_codes, probabilities), grader_type="ai", ai_model=model, **common)

    agreement = selectors.agreement(parse(manager, {"rater": "resident,resident2"}, kind=AGREEMENT))
    [pair] = agreement["pairs"]
    assert pair["n"] == 30 and pair["kappa"] == pytest.approx(_sk_kappa(first, reference), abs=1e-12)

    sel = parse(manager, {"rater": "ai:Imported:3.0"}, kind=PERFORMANCE, single_rater=True)
    data = selectors.performance(sel, sel.raters[0])
    truth = [code in REFERABLE for code in reference]
    tp, fp, tn, fn = _counts(list(zip(truth, [c in REFERABLE for c in ai_codes], strict=True)))
    assert (data["n"], data["tp"], data["fp"], data["tn"], data["fn"]) == (30, tp, fp, tn, fn)
    assert data["auc"]["value"] == pytest.approx(roc_auc_score(truth, probabilities))
    # The resident2 grades are the reference: not compared with themselves.
    own = parse(manager, {"rater": "resident2"}, kind=PERFORMANCE, single_rater=True)
    assert selectors.performance(own, own.raters[0])["counts"]["self_reference"] == 30


# --- Grader monitoring -----------------------------------------------------------------------------------------------


def test_monitoring_flags_graders_below_the_thresholds(seed, manager, settings):
    settings.QUALITY_MONITOR_MIN_CASES = 10
    careful, hasty = seed.user("careful"), seed.user("hasty")
    rng = np.random.default_rng(5)
    for i in range(60):
        ref = "3" if i % 2 else "0"
        image = seed.image()
        seed.consensus(image, ref)
        seed.grade(image, "primary", ref if rng.random() > 0.02 else "1", grader=careful)
        missed = ref == "3" and rng.random() < 0.4
        seed.grade(image, "secondary", "1" if missed else ref, grader=hasty)
    data = _json(selectors.monitoring(parse(manager, {}, kind=MONITORING)))
    by_name = {g["username"]: g for g in data["graders"]}
    assert data["thresholds"]["sensitivity"] == 0.80 and data["thresholds"]["specificity"] == 0.95
    assert by_name["hasty"]["status"] == "flagged" and by_name["hasty"]["flags"] == ["sensitivity"]
    assert by_name["careful"]["status"] == "ok"
    assert data["flagged"] == 1 and data["graders"][0]["username"] == "hasty"
    hasty = by_name["hasty"]
    assert hasty["n"] == 60 and hasty["positives"] == 30
    assert hasty["series"]["sensitivity"][-1] == pytest.approx(hasty["sensitivity"]["value"])
    # Configurable: with a lower minimum nobody is flagged.
    settings.QUALITY_MIN_SENSITIVITY = 0.2
    relaxed = selectors.monitoring(parse(manager, {}, kind=MONITORING))
    assert relaxed["flagged"] == 0


def test_monitoring_needs_enough_cases_before_flagging(seed, manager):
    reader = seed.user("reader")
    for _ in range(5):
        image = seed.image()
        seed.consensus(image, "3")
        seed.grade(image, "primary", "0", grader=reader)
    [grader] = selectors.monitoring(parse(manager, {}, kind=MONITORING))["graders"]
    assert grader["status"] == "too_few" and grader["sensitivity"]["value"] == 0.0


# --- Cache per selection ---------------------------------------------------------------------------------------------


def test_cache_is_per_selection_and_invalidated_when_grades_or_consensus_change(seed, manager):
    model = seed.ai_model()
    images = []
    for code in ("0", "2", "3"):
        image = seed.image()
        images.append(image)
        seed.grade(image, "primary", code)
        seed.grade(image, "secondary", code)
        seed.grade(image, "ai", code, ai_model=model, probability=0.5)
        seed.consensus(image, code)
    agreement = parse(manager, {}, kind=AGREEMENT)
    assert selectors.agreement_cached(agreement)[1] is False
    assert selectors.agreement_cached(agreement)[1] is True
    other = parse(manager, {"ungradable": "category"}, kind=AGREEMENT)
    assert selectors.agreement_cached(other)[1] is False  # another selection, another entry

    # A new grade: recomputed, and the figure includes it.
    image = seed.image()
    seed.grade(image, "primary", "1")
    seed.grade(image, "secondary", "1")
    data, hit = selectors.agreement_cached(agreement)
    assert hit is False and data["pairs"][0]["n"] == 4

    # A grade changed in place (saved): recomputed.
    grade = Grade.objects.get(image=image, grader_type="secondary")
    grade.option = seed.options["4"]
    grade.save()
    data, hit = selectors.agreement_cached(agreement)
    assert hit is False and data["pairs"][0]["exact"] == pytest.approx(3 / 4)

    # A new consensus: performance recomputed.
    perf = parse(manager, {"rater": "ai"}, kind=PERFORMANCE, single_rater=True)
    first, _ = selectors.performance_cached(perf, perf.raters[0])
    assert selectors.performance_cached(perf, perf.raters[0])[1] is True
    Consensus.objects.filter(image=images[0]).update(is_current=False)
    seed.consensus(images[0], "4")
    data, hit = selectors.performance_cached(perf, perf.raters[0])
    assert hit is False and data["fn"] == first["fn"] + 1

    # A deleted grade (bulk, no signal): the data stamp changes.
    selectors.agreement_cached(agreement)
    Grade.objects.filter(image=image).delete()
    data, hit = selectors.agreement_cached(agreement)
    assert hit is False and data["pairs"][0]["n"] == 3
