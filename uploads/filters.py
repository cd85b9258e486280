"""Dashboard filters: parsed from the URL (page and API alike), validated with messages a user can act on, and
written back to a canonical query string so a filtered view can be bookmarked and shared.

Reference filters take ids or codes (``?disease=DR`` or ``?disease=1``), repeated or comma-separated.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts import access
from accounts.models import Area, Camera, Disease, Role, User
from uploads.models import GradingStatus

MAX_SELECTION = 50
MAX_QUERY_LENGTH = 200

SORTS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "name": "File name A→Z",
    "-name": "File name Z→A",
}
DEFAULT_SORT = "newest"
YES = {"yes", "true", "1", "on", "y"}
NO = {"no", "false", "0", "off", "n"}


class FilterChoices:
    """The values a user may filter on, loaded once per request and only when needed."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def lab_units(self) -> list:
        return list(access.lab_units(self.user).order_by("hospital__name", "name"))

    @cached_property
    def hospitals(self) -> list:
        seen = {}
        for unit in self.lab_units:
            seen.setdefault(unit.hospital_id, unit.hospital)
        return sorted(seen.values(), key=lambda h: h.name)

    @cached_property
    def cameras(self) -> list:
        return list(Camera.objects.order_by("name"))

    @cached_property
    def diseases(self) -> list:
        return list(Disease.objects.order_by("id"))

    @cached_property
    def areas(self) -> list:
        return list(Area.objects.order_by("id"))

    @cached_property
    def shows_uploaders(self) -> bool:
        return access.is_admin(self.user) or access.has_role(self.user, Role.DATA_MANAGER)

    @cached_property
    def uploaders(self) -> list:
        """People whose uploads the user may see: everyone for admins, members of their lab units otherwise."""
        qs = User.objects.filter(is_active=True)
        ids = access.lab_unit_ids(self.user)
        if ids is not None:
            qs = qs.filter(Q(lab_units__in=ids) | Q(pk=self.user.pk)).distinct()
        return list(qs.order_by("username").only("id", "username", "first_name", "last_name"))


@dataclass
class ImageFilters:
    hospital: list[int] = field(default_factory=list)
    lab_unit: list[int] = field(default_factory=list)
    camera: list[int] = field(default_factory=list)
    disease: list[int] = field(default_factory=list)
    area: list[int] = field(default_factory=list)
    mydriatic: bool | None = None
    pregraded: bool | None = None
    grading: list[str] = field(default_factory=list)
    dataset: str = ""
    uploader: list[int] = field(default_factory=list)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str = ""
    ids: list[uuid.UUID] = field(default_factory=list)
    sort: str = DEFAULT_SORT

    def apply(self, qs: QuerySet) -> QuerySet:
        for name, column in (
            ("hospital", "hospital_id"),
            ("lab_unit", "lab_unit_id"),
            ("camera", "camera_id"),
            ("disease", "disease_id"),
            ("area", "area_id"),
            ("uploader", "uploaded_by_id"),
        ):
            values = getattr(self, name)
            if len(values) == 1:
                qs = qs.filter(**{column: values[0]})
            elif values:
                qs = qs.filter(**{f"{column}__in": values})
        if self.mydriatic is not None:
            qs = qs.filter(mydriatic=self.mydriatic)
        if self.pregraded is not None:
            qs = qs.filter(is_pregraded=self.pregraded)
        if len(self.grading) == 1:
            qs = qs.filter(grading_status=self.grading[0])
        elif self.grading:
            qs = qs.filter(grading_status__in=self.grading)
        if self.dataset:
            qs = qs.filter(dataset_label__iexact=self.dataset)
        if self.date_from:
            qs = qs.filter(uploaded_at__gte=_start_of(self.date_from))
        if self.date_to:
            qs = qs.filter(uploaded_at__lt=_start_of(self.date_to + dt.timedelta(days=1)))
        if self.q:
            qs = qs.filter(original_name__icontains=self.q)
        if self.ids:
            qs = qs.filter(pk__in=self.ids)
        return qs

    def as_pairs(self, *, with_sort: bool = True) -> list[tuple[str, str]]:
        """The canonical query string pairs of these filters (sort last)."""
        pairs: list[tuple[str, str]] = []
        for name in ("hospital", "lab_unit", "camera", "disease", "area"):
            pairs += [(name, str(value)) for value in getattr(self, name)]
        if self.mydriatic is not None:
            pairs.append(("mydriatic", "yes" if self.mydriatic else "no"))
        if self.pregraded is not None:
            pairs.append(("pregraded", "yes" if self.pregraded else "no"))
        pairs += [("grading", value) for value in self.grading]
        if self.dataset:
            pairs.append(("dataset", self.dataset))
        pairs += [("uploader", str(value)) for value in self.uploader]
        if self.date_from:
            pairs.append(("date_from", self.date_from.isoformat()))
        if self.date_to:
            pairs.append(("date_to", self.date_to.isoformat()))
        if self.q:
            pairs.append(("q", self.q))
        pairs += [("ids", str(value)) for value in self.ids]
        if with_sort and self.sort != DEFAULT_SORT:
            pairs.append(("sort", self.sort))
        return pairs

    def querystring(self, **extra) -> str:
        pairs = self.as_pairs() + [(k, str(v)) for k, v in extra.items() if v not in (None, "")]
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return bool(self.as_pairs(with_sort=False))

    def first(self, name: str):
        values = getattr(self, name)
        return values[0] if values else None


class FilterError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _values(params, name: str) -> list[str]:
    out = []
    for raw in params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]:
        for part in str(raw if raw is not None else "").split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _resolve(values: list[str], objects: list, label: str, errors: list[str], *, code_attr: str = "code") -> list[int]:
    by_id = {str(obj.pk): obj.pk for obj in objects}
    by_code = {str(getattr(obj, code_attr)).lower(): obj.pk for obj in objects}
    resolved = []
    for value in values:
        pk = by_id.get(value) if value.isdigit() else by_code.get(value.lower())
        if pk is None:
            errors.append(f"Unknown {label}: {value!r}. Choose one of the {label}s you may see (ids or codes).")
        elif pk not in resolved:
            resolved.append(pk)
    return resolved


def _boolean(params, name: str, label: str, errors: list[str]) -> bool | None:
    raw = str(params.get(name) or "").strip().lower()
    if raw in ("", "any", "all"):
        return None
    if raw in YES:
        return True
    if raw in NO:
        return False
    errors.append(f"{label} must be yes or no (or empty for any), got {raw!r}.")
    return None


def _date(params, name: str, label: str, errors: list[str]) -> dt.date | None:
    raw = str(params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label} must be a date written YYYY-MM-DD (e.g. 2026-01-31), got {raw!r}.")
        return None


def parse_ids(values: list[str], errors: list[str], *, limit: int = MAX_SELECTION) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for value in values:
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            errors.append(f"Not an image id: {value[:60]!r}. Image ids look like 3f2b…-…, as listed by /api/images/.")
            continue
        if parsed not in ids:
            ids.append(parsed)
    if len(ids) > limit:
        errors.append(
            f"Bulk actions take at most {limit} images at a time; {len(ids)} were selected. Select fewer images."
        )
    return ids


def parse(params, choices: FilterChoices) -> ImageFilters:
    """Read the filters from ``params`` (a QueryDict or dict). Raises FilterError listing every bad value."""
    errors: list[str] = []
    filters = ImageFilters()
    hospitals = _values(params, "hospital")
    if hospitals:
        filters.hospital = _resolve(hospitals, choices.hospitals, "hospital", errors)
    lab_units = _values(params, "lab_unit")
    if lab_units:
        filters.lab_unit = _resolve(lab_units, choices.lab_units, "lab unit", errors)
    cameras = _values(params, "camera")
    if cameras:
        filters.camera = _resolve(cameras, choices.cameras, "camera", errors)
    diseases = _values(params, "disease")
    if diseases:
        filters.disease = _resolve(diseases, choices.diseases, "disease", errors)
    areas = _values(params, "area")
    if areas:
        filters.area = _resolve(areas, choices.areas, "area", errors)
    uploaders = _values(params, "uploader")
    if uploaders:
        filters.uploader = _resolve(uploaders, choices.uploaders, "uploader", errors, code_attr="username")
    filters.mydriatic = _boolean(params, "mydriatic", "Mydriatic", errors)
    filters.pregraded = _boolean(params, "pregraded", "Pre-graded", errors)
    for value in _values(params, "grading"):
        if value not in GradingStatus.values:
            errors.append(f"Unknown grading status {value!r}. Allowed: {', '.join(GradingStatus.values)}.")
        elif value not in filters.grading:
            filters.grading.append(value)
    filters.dataset = str(params.get("dataset") or "").strip()[:120]
    filters.q = str(params.get("q") or "").strip()
    if len(filters.q) > MAX_QUERY_LENGTH:
        errors.append(f"The file name search is too long ({len(filters.q)} characters, max {MAX_QUERY_LENGTH}).")
        filters.q = filters.q[:MAX_QUERY_LENGTH]
    filters.date_from = _date(params, "date_from", "The 'from' date", errors)
    filters.date_to = _date(params, "date_to", "The 'to' date", errors)
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        errors.append(
            f"The 'from' date ({filters.date_from:%Y-%m-%d}) is after the 'to' date ({filters.date_to:%Y-%m-%d})."
        )
    ids = _values(params, "ids")
    if ids:
        filters.ids = parse_ids(ids, errors)
    sort = str(params.get("sort") or "").strip() or DEFAULT_SORT
    if sort not in SORTS:
        errors.append(f"Unknown sort {sort!r}. Allowed: {', '.join(SORTS)}.")
    else:
        filters.sort = sort
    if errors:
        raise FilterError(errors)
    return filters
