import datetime as dt

import pytest
from django.http import QueryDict
from django.utils import timezone

from accounts.models import Area, Disease, Role
from tests.factories import CameraFactory, LabUnitFactory
from uploads import filters, pagination, selectors
from uploads.models import GradingStatus

pytestmark = pytest.mark.django_db


def parse(user, query: str):
    return filters.parse(QueryDict(query), filters.FilterChoices(user))


def ids(qs):
    return {image.pk for image in qs}


def test_every_filter_narrows_the_list(make_image, make_user, lab_unit):
    other_unit = LabUnitFactory()
    user = make_user(Role.DATA_MANAGER, lab_units=[lab_unit, other_unit])
    colleague = make_user(Role.UPLOADER, lab_units=[lab_unit])
    cam_a, cam_b = CameraFactory(), CameraFactory()
    glaucoma, right = Disease.objects.get(code="GLAUCOMA"), Area.objects.get(code="right")
    base = make_image(lab_unit=lab_unit, uploaded_by=user, camera=cam_a, files=False, name="base.jpg")
    cases = {
        f"hospital={other_unit.hospital_id}": make_image(
            lab_unit=other_unit, uploaded_by=user, camera=cam_a, files=False
        ),
        f"lab_unit={other_unit.code}": make_image(lab_unit=other_unit, uploaded_by=user, camera=cam_a, files=False),
        f"camera={cam_b.code}": make_image(lab_unit=lab_unit, uploaded_by=user, camera=cam_b, files=False),
        "disease=glaucoma": make_image(lab_unit=lab_unit, uploaded_by=user, disease=glaucoma, files=False),
        "area=right": make_image(lab_unit=lab_unit, uploaded_by=user, area=right, files=False),
        "mydriatic=yes": make_image(lab_unit=lab_unit, uploaded_by=user, mydriatic=True, files=False),
        "pregraded=yes": make_image(lab_unit=lab_unit, uploaded_by=user, is_pregraded=True, files=False),
        "grading=in_arbitration": make_image(
            lab_unit=lab_unit, uploaded_by=user, grading_status=GradingStatus.IN_ARBITRATION, files=False
        ),
        "dataset=TRAIN-2026": make_image(lab_unit=lab_unit, uploaded_by=user, dataset_label="train-2026", files=False),
        f"uploader={colleague.username}": make_image(lab_unit=lab_unit, uploaded_by=colleague, files=False),
        "q=NEEDLE": make_image(lab_unit=lab_unit, uploaded_by=user, name="left_needle_01.jpg", files=False),
    }
    for query, expected in cases.items():
        if query.startswith(("hospital", "lab_unit")):
            got = ids(selectors.images_filtered(user, parse(user, query)))
            assert expected.pk in got and base.pk not in got, query
        else:
            assert ids(selectors.images_filtered(user, parse(user, query))) == {expected.pk}, query
    assert base.pk in ids(selectors.images_filtered(user, parse(user, "mydriatic=no&pregraded=no")))


def test_date_range_is_inclusive_in_local_days(make_image, uploader, lab_unit):
    day = dt.date(2026, 3, 10)
    at = timezone.make_aware(dt.datetime.combine(day, dt.time(23, 30)))
    inside = make_image(lab_unit=lab_unit, uploaded_by=uploader, uploaded_at=at, files=False)
    make_image(lab_unit=lab_unit, uploaded_by=uploader, uploaded_at=at + dt.timedelta(hours=1), files=False)
    make_image(lab_unit=lab_unit, uploaded_by=uploader, uploaded_at=at - dt.timedelta(days=1), files=False)
    found = selectors.images_filtered(uploader, parse(uploader, "date_from=2026-03-10&date_to=2026-03-10"))
    assert ids(found) == {inside.pk}


def test_multiple_values_repeated_or_comma_separated(make_image, uploader, lab_unit):
    a = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status="awaiting", files=False)
    b = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status="graded", files=False)
    make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False)
    for query in ("grading=awaiting&grading=graded", "grading=awaiting,graded"):
        assert ids(selectors.images_filtered(uploader, parse(uploader, query))) == {a.pk, b.pk}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("camera=nope", "Unknown camera: 'nope'."),
        ("disease=XYZ", "Unknown disease: 'XYZ'."),
        (
            "grading=done",
            "Unknown grading status 'done'. Allowed: not_queued, awaiting, in_progress, in_arbitration, graded.",
        ),
        ("mydriatic=maybe", "Mydriatic must be yes or no (or empty for any), got 'maybe'."),
        (
            "date_from=31/01/2026",
            "The 'from' date must be a date written YYYY-MM-DD (e.g. 2026-01-31), got '31/01/2026'.",
        ),
        (
            "date_from=2026-02-01&date_to=2026-01-01",
            "The 'from' date (2026-02-01) is after the 'to' date (2026-01-01).",
        ),
        ("sort=size", "Unknown sort 'size'. Allowed: newest, oldest, name, -name."),
        ("ids=not-a-uuid", "Not an image id: 'not-a-uuid'."),
    ],
)
def test_bad_filter_values_say_what_is_allowed(uploader, query, message):
    with pytest.raises(filters.FilterError) as exc:
        parse(uploader, query)
    assert any(error.startswith(message) for error in exc.value.errors), exc.value.errors


def test_a_lab_unit_outside_the_scope_is_unknown(uploader, other_lab_unit):
    with pytest.raises(filters.FilterError) as exc:
        parse(uploader, f"lab_unit={other_lab_unit.pk}")
    assert exc.value.errors[0].startswith(f"Unknown lab unit: '{other_lab_unit.pk}'.")


def test_querystring_round_trips(uploader, lab_unit):
    query = f"lab_unit={lab_unit.pk}&disease=1&mydriatic=no&grading=graded&q=abc&date_from=2026-01-01&sort=name"
    parsed = parse(uploader, query)
    assert parse(uploader, parsed.querystring()) == parsed
    assert "sort=name" in parsed.querystring()


@pytest.mark.parametrize("sort", list(filters.SORTS))
def test_keyset_pages_cover_every_row_once_forward_and_back(make_image, uploader, lab_unit, sort):
    start = timezone.now()
    made = []
    for i in range(23):
        # Ties on the sort value are broken by id: every third image shares a timestamp and a name.
        made.append(
            make_image(
                lab_unit=lab_unit,
                uploaded_by=uploader,
                name=f"img-{i // 3:02d}.jpg",
                uploaded_at=start - dt.timedelta(minutes=i // 3),
                files=False,
            )
        )
    f = parse(uploader, f"sort={sort}")
    pages, token = [], None
    while True:
        page = selectors.images_page(uploader, f, per_page=5, after=token)
        pages.append(page)
        if not page.next_token:
            break
        token = page.next_token
    seen = [image.pk for page in pages for image in page.rows]
    assert len(seen) == 23 and set(seen) == {image.pk for image in made}
    expected = [image.pk for image in selectors.images_filtered(uploader, f).order_by(*pagination.order_by(sort))]
    assert seen == expected
    assert [page.number for page in pages] == [1, 2, 3, 4, 5]
    # Walking back from the last page gives the same pages.
    page = pages[-1]
    back = [page]
    while page.has_prev:
        if page.prev_token:
            page = selectors.images_page(uploader, f, per_page=5, before=page.prev_token)
        else:
            page = selectors.images_page(uploader, f, per_page=5)
        back.append(page)
    assert [[i.pk for i in p.rows] for p in reversed(back)] == [[i.pk for i in p.rows] for p in pages]
    assert [p.number for p in reversed(back)] == [1, 2, 3, 4, 5]


def test_a_tampered_or_foreign_cursor_is_refused(make_image, uploader, lab_unit):
    for _ in range(3):
        make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False)
    f = parse(uploader, "")
    token = selectors.images_page(uploader, f, per_page=1).next_token
    for bad in ("garbage", token[:-3] + "xyz", "e30"):
        with pytest.raises(pagination.InvalidCursor, match="invalid or belongs to another sort order"):
            selectors.images_page(uploader, f, per_page=1, after=bad)
    with pytest.raises(pagination.InvalidCursor):
        selectors.images_page(uploader, parse(uploader, "sort=name"), per_page=1, after=token)


def test_kpis_count_every_visible_image_with_top_three(make_image, uploader, lab_unit, other_lab_unit):
    cams = [CameraFactory() for _ in range(4)]
    for index, count in enumerate((5, 3, 2, 1)):
        for _ in range(count):
            make_image(lab_unit=lab_unit, uploaded_by=uploader, camera=cams[index], files=False)
    make_image(lab_unit=other_lab_unit, uploaded_by=uploader, camera=cams[3], files=False)
    kpis = selectors.image_kpis(uploader, filters.FilterChoices(uploader))
    assert kpis["total"] == 11
    assert [(e["name"], e["count"]) for e in kpis["cameras"]["top"]] == [
        (c.name, n) for c, n in zip(cams, (5, 3, 2), strict=False)
    ]
    assert kpis["cameras"]["others"] == 1 and kpis["cameras"]["kinds"] == 4
    assert kpis["diseases"]["top"] == [
        {"id": Disease.objects.get(code="DR").pk, "name": "Diabetic Retinopathy", "count": 11}
    ]


def _references(image) -> tuple:
    return (
        image.hospital.name,
        image.lab_unit.name,
        image.camera.name if image.camera else None,
        image.disease.code,
        image.area.code if image.area else None,
    )


def test_page_rows_carry_their_references_from_the_choices(make_image, make_user, django_assert_num_queries):
    units = [LabUnitFactory(), LabUnitFactory()]
    manager = make_user(Role.DATA_MANAGER, lab_units=units)
    cameras = [CameraFactory(), CameraFactory()]
    glaucoma = Disease.objects.get(code="GLAUCOMA")
    for n in range(6):
        make_image(
            lab_unit=units[n % 2],
            uploaded_by=manager,
            camera=cameras[n % 2] if n % 3 else None,
            disease=glaucoma if n % 2 else None,
            files=False,
        )
    choices = filters.FilterChoices(manager)
    page = selectors.images_page(manager, parse(manager, ""), per_page=10, choices=choices)
    with django_assert_num_queries(0):
        shown = {image.pk: _references(image) for image in page.rows}
    fresh = selectors.images_visible_to(manager).select_related(*selectors.PAGE_REFERENCES)
    assert shown == {image.pk: _references(image) for image in fresh}
    assert len(shown) == 6


def test_references_outside_the_choices_are_fetched_not_invented(make_image, make_user, lab_unit):
    """Rows a stale or narrower choice list does not cover still get their true references."""
    owner = make_user(Role.UPLOADER, lab_units=[lab_unit])
    camera = CameraFactory()
    make_image(lab_unit=lab_unit, uploaded_by=owner, camera=camera, files=False)
    narrow = filters.FilterChoices(make_user(Role.UPLOADER))  # no lab units at all
    rows = list(selectors.images_visible_to(owner))
    selectors.attach_references(rows, narrow)
    assert _references(rows[0]) == (lab_unit.hospital.name, lab_unit.name, camera.name, "DR", "left")
