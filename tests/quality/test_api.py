"""Quality API: the JSON shapes the issue gives, undefined figures as null with a reason (never NaN), bad parameters
answered with what is allowed, who may read the figures, a constant number of queries, the cache header."""

import json

import pytest
from django.core.cache import cache

from accounts.models import Role, User
from tests.factories import LabUnitFactory

AGREEMENT_URL = "/api/quality/agreement"
PERFORMANCE_URL = "/api/quality/performance"
MONITORING_URL = "/api/quality/monitoring"


def _strict(response):
    """The body parsed strictly: NaN or Infinity in it would fail."""

    def refuse(token):
        raise AssertionError(f"{token} in JSON")

    return json.loads(response.content, parse_constant=refuse)


def _fill(seed, n, start=0):
    model = seed.ai_model("Screener", "2.1")
    a, b, c = seed.user("reader-a"), seed.user("reader-b"), seed.user("reader-c", Role.OPHTHALMOLOGIST)
    for i in range(start, start + n):
        image = seed.image()
        ref = str(i % 5)
        seed.grade(image, "primary", ref, grader=a)
        seed.grade(image, "secondary", str(max(0, i % 5 - (i % 3 == 0))), grader=b)
        seed.grade(image, "resident", str(min(4, i % 5 + (i % 4 == 0))), grader=c)
        seed.grade(image, "ai", ref if i % 6 else "1", ai_model=model, probability=(i % 10) / 10)
        seed.consensus(image, ref)


@pytest.fixture
def filled(seed):
    _fill(seed, 25)
    return seed


def test_agreement_shape(api_client, manager, filled):
    api_client.force_authenticate(manager)
    response = api_client.get(AGREEMENT_URL, {"disease": "DR"})
    assert response.status_code == 200
    data = _strict(response)
    assert {"n", "pairs", "fleiss_kappa"} <= set(data)
    assert data["n"] == 25
    assert len(data["pairs"]) == 3
    for pair in data["pairs"]:
        assert {"a", "b", "n", "exact", "within_one", "kappa", "kappa_linear", "kappa_quadratic", "ci"} <= set(pair)
        assert set(pair["ci"]) == {"exact", "within_one", "kappa", "kappa_linear", "kappa_quadratic"}
        for value in pair["ci"].values():
            assert value["low"] <= value["high"]
    assert data["fleiss_kappa"]["value"] is not None and data["fleiss_kappa"]["raters"] == 3
    assert response["X-Quality-Cache"] == "miss"
    assert api_client.get(AGREEMENT_URL, {"disease": "DR"})["X-Quality-Cache"] == "hit"


def test_performance_shape(api_client, manager, filled):
    api_client.force_authenticate(manager)
    response = api_client.get(PERFORMANCE_URL, {"disease": "DR", "rater": "ai:Screener:2.1"})
    assert response.status_code == 200
    data = _strict(response)
    assert {"n", "tp", "fp", "tn", "fn", "sensitivity", "specificity", "ppv", "npv", "auc", "roc"} <= set(data)
    assert data["tp"] + data["fp"] + data["tn"] + data["fn"] == data["n"] == 25
    for key in ("sensitivity", "specificity", "ppv", "npv", "auc"):
        assert {"value", "low", "high"} <= set(data[key])
        assert data[key]["low"] <= data[key]["value"] <= data[key]["high"], (key, data[key])
    assert data["roc"][0][0] == 0 and data["roc"][-1][:2] == [1, 1]
    assert all(len(point) == 3 for point in data["roc"])
    # A grader type, a username and user:<username> are raters too.
    for rater in ("secondary", "reader-c", "user:reader-b"):
        response = api_client.get(PERFORMANCE_URL, {"rater": rater})
        assert response.status_code == 200, response.content
        assert _strict(response)["auc"]["value"] is None


def test_undefined_figures_are_null_with_reasons(api_client, manager, seed):
    model = seed.ai_model()
    for _ in range(3):
        image = seed.image()
        seed.grade(image, "primary", "0")
        seed.grade(image, "secondary", "0")
        seed.grade(image, "ai", "0", ai_model=model, probability=0.5)
        seed.consensus(image, "0")
    api_client.force_authenticate(manager)
    agreement = _strict(api_client.get(AGREEMENT_URL))
    pair = agreement["pairs"][0]
    assert pair["kappa"] is None and pair["reasons"]["kappa"]
    assert agreement["fleiss_kappa"]["value"] is None and agreement["fleiss_kappa"]["reason"]
    performance = _strict(api_client.get(PERFORMANCE_URL, {"rater": "ai"}))
    assert performance["sensitivity"]["value"] is None and "referable" in performance["sensitivity"]["reason"]
    assert performance["auc"]["value"] is None and performance["auc"]["reason"]
    assert performance["roc"] == []


@pytest.mark.parametrize(
    ("url", "params", "field", "words"),
    [
        (PERFORMANCE_URL, {}, "rater", "rater is required"),
        (PERFORMANCE_URL, {"rater": "primary,secondary"}, "rater", "Give one rater"),
        (PERFORMANCE_URL, {"rater": "ai:Nope:1"}, "rater", "ai:Screener:2.1"),
        (PERFORMANCE_URL, {"rater": "primary", "unit": "retina"}, "unit", "image, eye, patient"),
        (PERFORMANCE_URL, {"rater": "primary", "ungradable": "category"}, "ungradable", "excluded, referable"),
        (PERFORMANCE_URL, {"rater": "primary", "threshold": "9"}, "threshold", "0, 1, 2, 3, 4"),
        (AGREEMENT_URL, {"disease": "XYZ"}, "disease", "Unknown disease"),
        (AGREEMENT_URL, {"ci": "jackknife"}, "ci", "analytic, bootstrap"),
        (AGREEMENT_URL, {"date_from": "2026-05-02", "date_to": "2026-05-01"}, "date_to", "before date_from"),
        (AGREEMENT_URL, {"scheme": "nope"}, "scheme", "icdr"),
    ],
)
def test_bad_parameters_are_400_with_what_is_allowed(api_client, manager, filled, url, params, field, words):
    api_client.force_authenticate(manager)
    response = api_client.get(url, params)
    assert response.status_code == 400
    body = response.json()
    assert words in body["errors"][field]
    assert words in body["detail"]


def test_who_may_read_quality_figures(api_client, make_user, lab_unit, filled):
    for role, status in (
        (Role.DATA_MANAGER, 200),
        (Role.OPHTHALMOLOGIST, 200),
        (Role.ADMIN, 200),
        (Role.RESIDENT, 403),
        (Role.UPLOADER, 403),
        (Role.OPTOMETRIST, 403),
    ):
        api_client.force_authenticate(make_user(role, lab_units=[lab_unit]))
        for url in (AGREEMENT_URL, f"{PERFORMANCE_URL}?rater=primary", MONITORING_URL):
            assert api_client.get(url).status_code == status, (role, url)
    api_client.force_authenticate(None)
    assert api_client.get(AGREEMENT_URL).status_code in (401, 403)


def test_figures_stay_inside_the_users_lab_units(api_client, make_user, seed, filled):
    outsider_unit = LabUnitFactory()
    outsider = make_user(Role.DATA_MANAGER, lab_units=[outsider_unit])
    api_client.force_authenticate(outsider)
    data = _strict(api_client.get(AGREEMENT_URL))
    assert data["n"] == 0 and data["pairs"] == []
    # Another lab unit's hospital or lab unit, or one of its graders, is not found.
    assert api_client.get(AGREEMENT_URL, {"lab_unit": str(seed.lab_unit.pk)}).status_code == 404
    assert api_client.get(AGREEMENT_URL, {"hospital": str(seed.lab_unit.hospital_id)}).status_code == 404
    response = api_client.get(PERFORMANCE_URL, {"rater": "reader-a"})
    assert response.status_code == 400 and "Unknown rater" in response.json()["errors"]["rater"]


@pytest.mark.parametrize(
    ("url", "params", "miss", "hit"),
    [
        (AGREEMENT_URL, {}, 8, 7),
        (AGREEMENT_URL, {"rater": "reader-a,reader-b,ai:Screener:2.1", "ci": "bootstrap"}, 10, 9),
        (PERFORMANCE_URL, {"rater": "ai:Screener:2.1", "unit": "patient"}, 10, 8),
        (PERFORMANCE_URL, {"rater": "reader-a"}, 11, 8),
        (MONITORING_URL, {}, 11, 7),
    ],
)
def test_constant_number_of_queries(api_client, manager, seed, django_assert_num_queries, url, params, miss, hit):
    """The same number of queries for 5 and for 30 images, computed and cached (pinned)."""
    for start, n in ((0, 5), (5, 25)):
        _fill(seed, n, start)
        cache.clear()
        for expected, state in ((miss, "miss"), (hit, "hit")):
            api_client.force_authenticate(User.objects.get(pk=manager.pk))  # a request loads its user afresh
            with django_assert_num_queries(expected):
                response = api_client.get(url, params)
            assert response.status_code == 200 and response["X-Quality-Cache"] == state
