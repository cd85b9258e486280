"""Reads for images, always inside the user's scope."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts import access
from uploads.models import Image


def images_visible_to(user) -> QuerySet[Image]:
    if not access.can(user, "view_images"):
        return Image.objects.none()
    return access.scope(Image.objects.all(), user)


def image_get(user, image_id) -> Image:
    try:
        return (
            images_visible_to(user)
            .select_related("hospital", "lab_unit", "camera", "disease", "area", "uploaded_by")
            .get(pk=image_id)
        )
    except (Image.DoesNotExist, ValueError) as exc:
        raise Http404("Image not found.") from exc


def upload_form_context(user) -> dict:
    from accounts.models import Area, Camera, Disease

    lab_units = list(access.lab_units(user))
    hospitals = sorted({unit.hospital for unit in lab_units}, key=lambda h: h.name)
    return {
        "hospitals": hospitals,
        "lab_units": lab_units,
        "cameras": list(Camera.objects.all()),
        "diseases": list(Disease.objects.all()),
        "areas": list(Area.objects.all()),
    }


# --- Dashboard ------------------------------------------------------------------------------------------------------

LIST_RELATED = ("hospital", "lab_unit", "camera", "disease", "area", "uploaded_by", "edit")


def images_for_list(user) -> QuerySet[Image]:
    """The user's images with everything a dashboard row or an API item shows, in one query per page."""
    return images_visible_to(user).select_related(*LIST_RELATED)


def images_filtered(user, filters) -> QuerySet[Image]:
    return filters.apply(images_for_list(user))


# A page query joins only what differs per row (uploader, edit). With the five reference tables joined as well,
# PostgreSQL spends far longer choosing a join order (tens of milliseconds, on every request) than running the query;
# with two joins it plans in well under a millisecond. The reference rows are small tables the filter form (or the
# filter parser) loads anyway, so they are attached from there.
PAGE_JOINED = ("uploaded_by", "edit")
PAGE_REFERENCES = ("hospital", "lab_unit", "camera", "disease", "area")


def images_page(user, filters, *, per_page: int, after: str | None = None, before: str | None = None, choices=None):
    """One keyset page of the user's images matching ``filters`` (see uploads.pagination): one query for the rows,
    the reference rows from ``choices`` (a FilterChoices of the same user), however deep the page."""
    from uploads import pagination
    from uploads.filters import FilterChoices

    qs = filters.apply(images_visible_to(user).select_related(*PAGE_JOINED))
    page = pagination.paginate(qs, sort=filters.sort, per_page=per_page, after=after, before=before)
    attach_references(page.rows, choices or FilterChoices(user))
    return page


def attach_references(images: list[Image], choices) -> None:
    """Give each image its hospital, lab unit, camera, disease and area objects from ``choices`` (no query when
    those lists are loaded already). An image pointing outside them (it cannot be in the user's scope, but data
    may change between two reads) gets its references fetched the ordinary way."""
    from django.db.models import prefetch_related_objects

    if not images:
        return
    units = {unit.pk: unit for unit in choices.lab_units}
    tables = {
        "camera": {c.pk: c for c in choices.cameras},
        "disease": {d.pk: d for d in choices.diseases},
        "area": {a.pk: a for a in choices.areas},
    }
    fields = {name: Image._meta.get_field(name) for name in PAGE_REFERENCES}
    strays = []
    for image in images:
        unit = units.get(image.lab_unit_id)
        if unit is None or unit.hospital_id != image.hospital_id:
            strays.append(image)
            continue
        fields["lab_unit"].set_cached_value(image, unit)
        fields["hospital"].set_cached_value(image, unit.hospital)
        for name, known in tables.items():
            value_id = getattr(image, f"{name}_id")
            if value_id is None:
                fields[name].set_cached_value(image, None)
            elif value_id in known:
                fields[name].set_cached_value(image, known[value_id])
            else:
                strays.append(image)
                break
    if strays:
        prefetch_related_objects(strays, *PAGE_REFERENCES)


def images_count(user, filters) -> int:
    return filters.apply(images_visible_to(user)).order_by().count()


def image_kpis(user, choices) -> dict:
    """The dashboard's KPI cards over every image the user may see (all time): the total and the top 3 cameras,
    diseases and areas. One grouped query; names come from ``choices`` (already loaded for the filters)."""
    from django.db.models import Count

    # Grouped by lab unit first and counted with COUNT(*), not COUNT(id): exactly the image_scope_kpis index in its
    # order, so PostgreSQL aggregates while it reads that index and never touches the table.
    rows = (
        images_visible_to(user)
        .order_by()
        .values_list("lab_unit_id", "camera_id", "disease_id", "area_id")
        .annotate(n=Count("*"))
    )
    total = 0
    tallies: dict[str, dict] = {"camera": {}, "disease": {}, "area": {}}
    for _lab_unit_id, camera_id, disease_id, area_id, n in rows:
        total += n
        for key, value in (("camera", camera_id), ("disease", disease_id), ("area", area_id)):
            tallies[key][value] = tallies[key].get(value, 0) + n
    names = {
        "camera": {c.pk: c.name for c in choices.cameras},
        "disease": {d.pk: d.name for d in choices.diseases},
        "area": {a.pk: a.name for a in choices.areas},
    }

    def top(key: str) -> dict:
        ranked = sorted(tallies[key].items(), key=lambda pair: (-pair[1], names[key].get(pair[0], "")))
        entries = [
            {"id": pk, "name": names[key].get(pk, "Not set") if pk is not None else "Not set", "count": n}
            for pk, n in ranked
        ]
        return {"kinds": len(entries), "top": entries[:3], "others": sum(e["count"] for e in entries[3:])}

    return {"total": total, "cameras": top("camera"), "diseases": top("disease"), "areas": top("area")}


def image_for_page(user, image_id) -> Image:
    """An image for its page (with its edit), or Http404; a deleted one raises ImageGone when its tombstone is in
    the user's scope (the answer is then 410 with when and by whom)."""
    try:
        return images_for_list(user).select_related("edit__edited_by").get(pk=image_id)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError):
        tombstone = image_tombstone(user, image_id)
        if tombstone is not None:
            raise ImageGone(tombstone) from None
        raise Http404("Image not found.") from None


class ImageGone(Exception):
    def __init__(self, tombstone):
        super().__init__(str(tombstone))
        self.tombstone = tombstone

    @property
    def message(self) -> str:
        t = self.tombstone
        who = t.actor_username or "an unknown user"
        return (
            f"This image was deleted on {timezone.localtime(t.created_at):%Y-%m-%d %H:%M} by {who}. "
            "Deleted images cannot be recovered; the audit trail keeps a record of it."
        )


def image_tombstone(user, image_id):
    from uploads.models import AuditEvent

    if not access.can(user, "view_images"):
        return None
    qs = AuditEvent.objects.filter(object_type="image", object_id=str(image_id), action=AuditEvent.Action.IMAGE_DELETED)
    return access.scope(qs, user).order_by("-created_at").first()


def image_history(image, limit: int = 100) -> list:
    """The image's audit trail, newest first."""
    from uploads.models import AuditEvent

    events = AuditEvent.objects.filter(object_type="image", object_id=str(image.pk))
    return list(events.order_by("-created_at", "-id")[:limit])


def images_for_update(user, ids) -> list[Image]:
    """Images in the user's scope among ``ids``, locked until the surrounding transaction ends (bulk actions)."""
    return list(images_visible_to(user).select_for_update().filter(pk__in=list(ids)).order_by("pk"))
