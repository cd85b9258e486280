"""Scheme lookup, option matching (codes, labels, synonyms; case, spaces, punctuation; 2.0 → 2), reference data."""

import pytest

from accounts.models import Disease
from grading import selectors
from grading.models import GradeOption, GradeScheme


@pytest.mark.django_db
def test_scheme_for_by_object_id_or_code():
    dr = Disease.objects.get(code="DR")
    assert selectors.scheme_for(dr).code == "icdr"
    assert selectors.scheme_for(dr.pk).code == "icdr"
    assert selectors.scheme_for("glaucoma").code == "glaucoma"
    assert selectors.scheme_for("AMD").code == "amd-beckman"
    GradeScheme.objects.filter(code="amd-beckman").update(is_active=False)
    assert selectors.scheme_for("AMD") is None


@pytest.mark.django_db
def test_seeded_schemes_follow_grading_md():
    codes = set(GradeScheme.objects.values_list("code", flat=True))
    assert {"icdr", "icdr-dme", "nhs-desp", "glaucoma", "amd-beckman", "image-quality"} <= codes
    icdr = GradeScheme.objects.get(code="icdr")
    assert [(o.code, o.referable, o.ungradable) for o in icdr.options.order_by("ungradable", "ordinal")] == [
        ("0", False, False),
        ("1", False, False),
        ("2", True, False),
        ("3", True, False),
        ("4", True, False),
        ("U", False, True),
    ]
    assert set(GradeScheme.objects.filter(is_active=True).values_list("code", flat=True)) == {
        "icdr",
        "glaucoma",
        "amd-beckman",
    }


ICDR = [
    ("2", "2"),
    (2, "2"),
    ("2.0", "2"),
    (2.0, "2"),
    (" moderate   npdr ", "2"),
    ("Mod. NPDR", "2"),
    ("No DR", "0"),
    ("no-dr", "0"),
    ("R0", "0"),
    ("No signs of DR detected", "0"),
    ("MA only", "1"),
    ("Proliferative DR", "4"),
    ("R3A", "4"),
    ("Very severe NPDR", "3"),
    ("UG", "U"),
    ("Not gradable", "U"),
    ("cannot grade", "U"),
    ("Insufficient", "U"),
    ("u", "U"),
    ("Referable DR", None),  # no level: goes to the mapping step, never guessed
    ("banana", None),
    ("2.5", None),
    ("", None),
    ("-", None),
    (None, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "expected"), ICDR)
def test_option_match_icdr(value, expected):
    option = selectors.option_match(selectors.scheme_for("DR"), value)
    assert (option.code if option else None) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scheme", "value", "expected"),
    [
        ("glaucoma", "Referable Glacuoma", "RG"),
        ("glaucoma", "Suspect", "RG"),
        ("glaucoma", "No Referable Glaucoma", "NRG"),
        ("glaucoma", "normal", "NRG"),
        ("dr-referable", "RDR", "RDR"),
        ("dr-referable", "Yes", "RDR"),
        ("dr-referable", "No", "NRDR"),
        ("amd-beckman", "Geographic atrophy", "late"),
        ("image-quality", "Poor", "insufficient"),
    ],
)
def test_option_match_other_schemes(scheme, value, expected):
    option = selectors.option_match(GradeScheme.objects.get(code=scheme), value)
    assert option.code == expected


@pytest.mark.django_db
def test_codes_win_over_synonyms_and_retired_options_are_not_matched():
    scheme = GradeScheme.objects.get(code="icdr")
    GradeOption.objects.filter(scheme=scheme, code="4").update(synonyms=["2"])  # a careless synonym
    assert selectors.option_match(scheme, "2").code == "2"
    GradeOption.objects.filter(scheme=scheme, code="1").update(retired=True)
    scheme = GradeScheme.objects.get(code="icdr")
    assert selectors.option_match(scheme, "Mild") is None
    assert selectors.option_match(scheme, "Mild", include_retired=True).code == "1"


def test_reference_lists_grade_schemes(api_client, resident):
    api_client.force_authenticate(resident)
    response = api_client.get("/api/reference/")
    assert response.status_code == 200
    schemes = {s["code"]: s for s in response.json()["grade_schemes"]}
    assert schemes["icdr"]["disease"] == "DR" and schemes["icdr"]["is_active"]
    assert [o["code"] for o in schemes["icdr"]["options"]][:2] == ["0", "1"]
    assert schemes["image-quality"]["disease"] is None
    option = schemes["glaucoma"]["options"][0]
    assert set(option) >= {"id", "code", "label", "ordinal", "referable", "ungradable", "retired", "synonyms"}


def test_options_offered_have_keys(db):
    scheme = GradeScheme.objects.prefetch_related("options").get(code="glaucoma")
    keys = [(o.code, o.key) for o in selectors.options_offered(scheme)]
    assert keys == [("NRG", "1"), ("RG", "2"), ("U", "U")]
    icdr = GradeScheme.objects.prefetch_related("options").get(code="icdr")
    assert [o.key for o in selectors.options_offered(icdr)] == ["0", "1", "2", "3", "4", "U"]
