"""Reads for ZIP ingestion, always inside the user's scope, with a constant number of queries per list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from accounts import access
from remedio.models import AIResult, Archive, Encounter, EncounterImage, Report


def can_list(user) -> bool:
    return access.can(user, "verify_encounters") or access.can(user, "upload_zip")


def encounters_visible_to(user) -> QuerySet[Encounter]:
    """Data managers (and admins) see the encounters of their lab units; uploaders those of the archives they sent.
    An archive still being processed (or being removed after a failure) shows nothing."""
    if not can_list(user):
        return Encounter.objects.none()
    qs = access.scope(Encounter.objects.filter(archive__status=Archive.Status.COMPLETE), user)
    if not access.can(user, "verify_encounters"):
        qs = qs.filter(archive__uploaded_by=user)
    return qs


def _with_details(qs: QuerySet[Encounter]) -> QuerySet[Encounter]:
    return qs.select_related("patient", "lab_unit", "lab_unit__hospital", "camera", "archive", "verified_by").prefetch_related(
        Prefetch(
            "images",
            queryset=EncounterImage.objects.select_related("image").order_by("position", "id"),
        ),
        Prefetch("reports", queryset=Report.objects.order_by("entry_name", "id")),
    )


@dataclass
class EncounterFilters:
    job: str | None = None
    lab_unit: int | None = None
    status: str | None = None
    capture_date_from: dt.date | None = None
    capture_date_to: dt.date | None = None
    pseudonym: str | None = None
    needs_manual_entry: bool | None = None


def encounter_list(user, filters: EncounterFilters | None = None) -> QuerySet[Encounter]:
    """Encounters with patient, lab unit, camera, images (with their Image) and reports loaded."""
    filters = filters or EncounterFilters()
    qs = encounters_visible_to(user)
    if filters.job:
        qs = qs.filter(archive__job_id=filters.job)
    if filters.lab_unit:
        qs = qs.filter(lab_unit_id=filters.lab_unit)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.capture_date_from:
        qs = qs.filter(capture_date__gte=filters.capture_date_from)
    if filters.capture_date_to:
        qs = qs.filter(capture_date__lte=filters.capture_date_to)
    if filters.pseudonym:
        qs = qs.filter(patient__pseudonym__iexact=filters.pseudonym.strip())
    if filters.needs_manual_entry is not None:
        qs = qs.filter(needs_manual_entry=filters.needs_manual_entry)
    return _with_details(qs).order_by("-capture_date", "-id")


def encounter_get(user, encounter_id) -> Encounter:
    """One encounter with its details, or 404 (outside the user's scope looks exactly like missing)."""
    return access.get_in_scope(_with_details(encounters_visible_to(user)), user, pk=encounter_id)


def encounter_rows(user, *, lab_unit: int | None = None, status: str | None = None) -> QuerySet[Encounter]:
    """The verification list: encounters with counts and flags annotated (no per-row queries)."""
    qs = encounters_visible_to(user)
    if lab_unit:
        qs = qs.filter(lab_unit_id=lab_unit)
    if status:
        qs = qs.filter(status=status)
    masked = EncounterImage.objects.filter(encounter=OuterRef("pk")).exclude(mask_boxes=[])
    return (
        qs.select_related("patient", "lab_unit", "lab_unit__hospital", "camera", "verified_by")
        .annotate(
            image_count=Count("images", distinct=True),
            report_count=Count("reports", distinct=True),
            has_mask=Exists(masked),
        )
        .order_by("lab_unit__hospital__name", "lab_unit__name", "capture_date", "id")
    )


def awaiting_counts(user) -> list[dict]:
    """Encounters awaiting verification per lab unit of the user (for the list's summary)."""
    rows = (
        encounters_visible_to(user)
        .values("lab_unit_id", "lab_unit__name", "lab_unit__hospital__name")
        .annotate(
            awaiting=Count("id", filter=Q(status=Encounter.Status.AWAITING)),
            manual=Count("id", filter=Q(status=Encounter.Status.AWAITING, needs_manual_entry=True)),
        )
        .order_by("lab_unit__hospital__name", "lab_unit__name")
    )
    return [row for row in rows if row["awaiting"]]


def next_awaiting(user, *, after: Encounter) -> Encounter | None:
    """The next encounter to verify in the same lab unit (for "verify and next")."""
    return (
        encounters_visible_to(user)
        .filter(status=Encounter.Status.AWAITING, lab_unit_id=after.lab_unit_id)
        .exclude(pk=after.pk)
        .order_by("capture_date", "id")
        .first()
    )


def current_ai_results(encounter_ids) -> dict[int, list[AIResult]]:
    out: dict[int, list[AIResult]] = {}
    for result in AIResult.objects.filter(encounter_id__in=list(encounter_ids), is_current=True).order_by("target"):
        out.setdefault(result.encounter_id, []).append(result)
    return out


def image_link(image) -> EncounterImage | None:
    """The encounter of a ZIP-ingested image (with patient), or None."""
    return (
        EncounterImage.objects.select_related("encounter", "encounter__patient")
        .filter(image_id=image.pk, encounter__archive__status=Archive.Status.COMPLETE)
        .first()
    )


def report_get(user, encounter_id, report_id) -> Report:
    encounter = access.get_in_scope(encounters_visible_to(user), user, pk=encounter_id)
    return access.get_in_scope(Report.objects.filter(encounter=encounter), user, "encounter__lab_unit", pk=report_id)


def image_link_get(user, image_id) -> EncounterImage:
    qs = EncounterImage.objects.select_related("image", "encounter").filter(encounter__in=encounters_visible_to(user))
    return access.get_in_scope(qs, user, "encounter__lab_unit", image_id=image_id)


def identifiers_of(encounter: Encounter) -> dict:
    """The decrypted identifying fields. Callers check ``access.can(user, "view_identifiers")`` first."""
    from remedio import identity

    age = identity.decrypt(encounter.age_encrypted)
    return {
        "name": identity.decrypt(encounter.patient.name_encrypted),
        "patient_id": identity.decrypt(encounter.patient.patient_id_encrypted),
        "age": int(age) if age.isdigit() else (age or None),
        "sex": identity.decrypt(encounter.patient.sex_encrypted),
    }


def raw_text_of(report: Report, *, identifiers: bool) -> str:
    from remedio import identity

    return identity.decrypt(report.raw_text_encrypted) if identifiers else report.raw_text_redacted
