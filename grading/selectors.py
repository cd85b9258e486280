"""Reads for grading: schemes and option matching, tasks, grades with history, consensus, discrepancies, progress.

Every function that takes a user restricts what it returns to the user's lab units (accounts.access).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from accounts import access
from accounts.models import Disease
from grading.models import (
    IMPORTED_GRADER_TYPES,
    Consensus,
    Grade,
    GradeOption,
    GraderType,
    GradeScheme,
    GradingTask,
    Slot,
)

# --- Schemes and option matching -----------------------------------------------------------------------------------


def scheme_for(disease: Disease | int | str) -> GradeScheme | None:
    """The active scheme of a disease (object, id or code), with its options prefetched; None when it has none."""
    qs = GradeScheme.objects.filter(is_active=True).prefetch_related("options")
    if isinstance(disease, Disease):
        return qs.filter(disease=disease).first()
    value = str(disease).strip()
    if value.isdigit():
        return qs.filter(disease_id=int(value)).first()
    return qs.filter(disease__code__iexact=value).first()


def schemes_by_disease(disease_ids) -> dict[int, GradeScheme]:
    """Active schemes of several diseases in one query: ``{disease_id: scheme}``."""
    return {s.disease_id: s for s in GradeScheme.objects.filter(is_active=True, disease_id__in=list(disease_ids))}


_NUMBER = re.compile(r"^[+-]?\d+(\.0+)?$")


def normalise_value(value) -> str:
    """Case-, space- and punctuation-insensitive form of a grade value; ``2.0`` and ``2`` are the same."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif _NUMBER.match(text):
        text = str(int(float(text)))
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def is_blank_value(value) -> bool:
    """Blank cells and "-" mean "no grade", not an error."""
    return value is None or str(value).strip() in {"", "-", "–", "—"}


def option_index(scheme: GradeScheme, include_retired: bool = False) -> dict[str, GradeOption]:
    """Normalised code / label / synonym → option. Codes win over labels, labels over synonyms, so an ambiguous
    synonym never hides an exact code."""
    options = [o for o in scheme.options.all() if include_retired or not o.retired]
    index: dict[str, GradeOption] = {}
    for layer in ("synonyms", "label", "code"):
        for option in options:
            values = option.synonyms or [] if layer == "synonyms" else [getattr(option, layer)]
            for value in values:
                key = normalise_value(value)
                if key:
                    index[key] = option
    return index


def option_match(scheme: GradeScheme, value, *, include_retired: bool = False) -> GradeOption | None:
    """The option a value means under a scheme, matching codes, labels and synonyms ignoring case, spaces and
    punctuation (``"Mod. NPDR"``, ``" moderate npdr "``, ``2.0`` → ICDR 2). None when nothing matches or the value is
    blank: the caller decides (a mapping step, or "no grade"); a value is never guessed."""
    if is_blank_value(value):
        return None
    return option_index(scheme, include_retired).get(normalise_value(value))


def option_code_lookup(scheme: GradeScheme, code) -> GradeOption | None:
    """An option of the scheme by its exact code (case-insensitive), for queue grades."""
    wanted = str(code or "").strip().casefold()
    for option in scheme.options.all():
        if option.code.casefold() == wanted:
            return option
    return None


def options_offered(scheme: GradeScheme) -> list[GradeOption]:
    """Options a grader may choose now (retired ones are kept for history only), gradable first, with shortcuts."""
    options = sorted((o for o in scheme.options.all() if not o.retired), key=lambda o: (o.ungradable, o.ordinal, o.pk))
    used = set()
    position = 0
    for option in options:
        key = option.shortcut.strip()
        if not key:
            if option.ungradable:
                key = "u"
            else:
                position += 1
                key = str(position % 10)
        if key.casefold() in used:
            key = ""
        used.add(key.casefold())
        option.key = key.upper() if key.isalpha() else key
    return options


def scheme_in_use(scheme: GradeScheme) -> bool:
    return Grade.objects.filter(scheme=scheme).exists() or GradingTask.objects.filter(scheme=scheme).exists()


def reference_schemes(user) -> list[dict]:
    """The grade schemes section of GET /api/reference/ (two queries)."""
    schemes = GradeScheme.objects.select_related("disease").prefetch_related("options")
    return [
        {
            "id": s.pk,
            "code": s.code,
            "name": s.name,
            "disease": s.disease.code if s.disease else None,
            "is_active": s.is_active,
            "agreement_rule": s.agreement_rule,
            "agreement_steps": s.agreement_steps,
            "blinded": s.blinded,
            "options": [
                {
                    "id": o.pk,
                    "code": o.code,
                    "label": o.label,
                    "ordinal": o.ordinal,
                    "referable": o.referable,
                    "ungradable": o.ungradable,
                    "retired": o.retired,
                    "synonyms": o.synonyms,
                }
                for o in s.options.all()
            ],
        }
        for s in schemes
    ]


def disease_resolve(value) -> Disease | None:
    value = str(value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return Disease.objects.filter(pk=int(value)).first()
    return Disease.objects.filter(code__iexact=value).first()


# --- Tasks ---------------------------------------------------------------------------------------------------------


def slots_allowed(user) -> list[str]:
    """Queue slots the user's roles may take."""
    slots = []
    if access.can(user, "grade"):
        slots.append(Slot.PRIMARY)
    if access.can(user, "grade_secondary"):
        slots.append(Slot.SECONDARY)
    if access.can(user, "arbitrate"):
        slots.append(Slot.ARBITRATION)
    return slots


def task_get(user, task_id) -> GradingTask:
    """A task inside the user's lab units (404 otherwise), with what the grading page needs."""
    qs = GradingTask.objects.select_related(
        "image", "image__area", "image__camera", "disease", "scheme", "leased_to", "completed_by"
    ).prefetch_related("scheme__options")
    try:
        return access.get_in_scope(qs, user, "lab_unit", pk=int(task_id))
    except (ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc


def active_lease(user, disease_id: int) -> GradingTask | None:
    now = timezone.now()
    return (
        GradingTask.objects.filter(
            leased_to=user, status=GradingTask.Status.LEASED, disease_id=disease_id, lease_expires_at__gt=now
        )
        .order_by("lease_expires_at")
        .first()
    )


def queue_counts(user) -> list[dict]:
    """Per disease with open tasks: tasks the user could take now, and their running leases (two queries).

    "Could take" leaves out slots of images the user already graded. That part is counted from the user's own
    finished tasks and subtracted, rather than checked row by row over the whole queue, so the page stays fast with
    a million open tasks."""
    slots = slots_allowed(user)
    if not slots:
        return []
    now = timezone.now()
    takeable = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    qs = access.scope(GradingTask.objects.filter(status__in=GradingTask.OPEN, slot__in=slots), user)
    rows = list(
        qs.values("disease_id", "disease__code", "disease__name")
        .annotate(
            available=Count("id", filter=takeable),
            mine=Count("id", filter=Q(leased_to=user, lease_expires_at__gt=now)),
        )
        .order_by("disease_id")
    )
    done = GradingTask.objects.filter(completed_by=user)
    graded = dict(
        qs.filter(takeable, image_id__in=done.values("image_id"))
        .filter(Exists(done.filter(image_id=OuterRef("image_id"), disease_id=OuterRef("disease_id"))))
        .values_list("disease_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        row["available"] -= graded.get(row["disease_id"], 0)
    return rows


# --- Grades, history, consensus ------------------------------------------------------------------------------------


@dataclass
class Visibility:
    """What of other graders' work a user may see on an image."""

    all_grades: bool
    names: bool


def grade_visibility(user, image) -> Visibility:
    """Blinding: a grader sees other graders' grades of an image only once its grading is finished, unless the scheme
    says graders are not blinded. Data managers, ophthalmologists with quality access and admins see everything."""
    if access.is_admin(user) or (access.can(user, "view_quality") and not access.can(user, "grade")):
        return Visibility(all_grades=True, names=True)
    open_blinded = GradingTask.objects.filter(
        image=image, status__in=GradingTask.OPEN, scheme__blinded=True, slot__in=[Slot.PRIMARY, Slot.SECONDARY]
    ).exists()
    if access.can(user, "grade") and open_blinded:
        return Visibility(all_grades=False, names=False)
    return Visibility(all_grades=True, names=access.can(user, "view_quality") or access.can(user, "grade"))


def image_grades(image, user=None) -> dict:
    """All grades of an image (history included) and its consensus records, grouped by scheme (three queries).

    With a user, blinding applies: while the image is being graded blind, a grader sees only their own grades."""
    grades = list(
        Grade.objects.filter(image=image)
        .select_related("option", "scheme", "disease", "grader", "ai_model", "task", "supersedes")
        .order_by("scheme_id", "created_at", "id")
    )
    consensus = list(
        Consensus.objects.filter(image=image)
        .select_related("option", "scheme", "disease", "decided_by")
        .prefetch_related(Prefetch("grades", queryset=Grade.objects.only("id", "grader_type")))
        .order_by("scheme_id", "created_at", "id")
    )
    visibility = grade_visibility(user, image) if user is not None else Visibility(True, True)
    if not visibility.all_grades:
        grades = [g for g in grades if g.grader_id == user.pk]
        consensus = []
    by_scheme: dict[int, dict] = {}
    for grade in grades:
        entry = by_scheme.setdefault(grade.scheme_id, {"scheme": grade.scheme, "grades": [], "consensus": []})
        entry["grades"].append(grade)
    for record in consensus:
        entry = by_scheme.setdefault(record.scheme_id, {"scheme": record.scheme, "grades": [], "consensus": []})
        entry["consensus"].append(record)
    return {"schemes": list(by_scheme.values()), "visibility": visibility}


def revision_allowed(task: GradingTask, user) -> bool:
    """A grader may revise their own grade until the next stage starts: for the independent slots, until both are in
    (consensus or arbitration follows at once); an arbitrator may revise their adjudication."""
    if task.status != GradingTask.Status.DONE or task.completed_by_id != user.pk:
        return False
    if task.slot == Slot.ARBITRATION:
        return True
    return not (
        GradingTask.objects.filter(image_id=task.image_id, disease_id=task.disease_id)
        .exclude(pk=task.pk)
        .filter(Q(status=GradingTask.Status.DONE) | Q(slot=Slot.ARBITRATION))
        .exists()
    )


def image_tasks(image) -> list[GradingTask]:
    """The grading tasks of an image, by disease and slot (one query)."""
    order = {Slot.PRIMARY: 0, Slot.SECONDARY: 1, Slot.ARBITRATION: 2}
    tasks = list(
        GradingTask.objects.filter(image=image).select_related("disease", "scheme", "completed_by", "leased_to")
    )
    return sorted(tasks, key=lambda t: (t.disease_id, order.get(t.slot, 9)))


def task_context_grades(task: GradingTask, user) -> dict:
    """Other grades a grader may see while grading a task (two queries at most).

    Arbitration: both slot grades, by design. Unblinded scheme: the current grades of the other slots. Pre-graded image
    and a scheme that allows it: the imported (pre-assigned) grades. Otherwise nothing: blind."""
    shown: list[Grade] = []
    base = Grade.objects.filter(
        image_id=task.image_id, disease_id=task.disease_id, scheme_id=task.scheme_id, is_current=True
    ).select_related("option", "ai_model")
    if task.slot == Slot.ARBITRATION:
        shown = list(base.filter(grader_type__in=[GraderType.PRIMARY, GraderType.SECONDARY, *IMPORTED_GRADER_TYPES]))
        shown = [g for g in shown if g.grader_type != GraderType.AI]
    else:
        types = []
        if not task.scheme.blinded:
            types += [GraderType.PRIMARY, GraderType.SECONDARY, GraderType.ARBITRATION]
        if task.scheme.graders_see_pregraded and task.image.is_pregraded:
            types += list(IMPORTED_GRADER_TYPES)
        if types:
            shown = [g for g in base.filter(grader_type__in=types) if g.grader_id != user.pk]
    return {"grades": shown}


def image_companions(image, user) -> list:
    """Other images of the same patient and visit (left / right eye), when a provider knows them."""
    from grading import hooks

    return hooks.companions_for(image, user)


# --- Discrepancies ----------------------------------------------------------------------------------------------------


@dataclass
class DiscrepancyFilters:
    kind: str = "graders"  # "graders" (primary vs secondary) or "ai" (AI vs consensus)
    hospital: int | None = None
    lab_unit: int | None = None
    disease: int | None = None
    grader: int | None = None
    ai_model: int | None = None
    date_from: object = None
    date_to: object = None


def discrepancies_graders(user, filters: DiscrepancyFilters) -> QuerySet[GradingTask]:
    """Images whose primary and secondary graders disagreed: they have an arbitration task (open or done)."""
    qs = access.scope(
        GradingTask.objects.filter(slot=Slot.ARBITRATION).exclude(status=GradingTask.Status.CANCELLED), user
    )
    if filters.hospital:
        qs = qs.filter(image__hospital_id=filters.hospital)
    if filters.lab_unit:
        qs = qs.filter(lab_unit_id=filters.lab_unit)
    if filters.disease:
        qs = qs.filter(disease_id=filters.disease)
    if filters.grader:
        qs = qs.filter(
            Exists(
                Grade.objects.filter(
                    image_id=OuterRef("image_id"),
                    disease_id=OuterRef("disease_id"),
                    grader_id=filters.grader,
                )
            )
        )
    if filters.date_from:
        qs = qs.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(created_at__date__lte=filters.date_to)
    return qs.select_related("image", "image__hospital", "image__lab_unit", "disease", "scheme").order_by(
        "-created_at", "-id"
    )


def discrepancies_ai(user, filters: DiscrepancyFilters) -> QuerySet[Grade]:
    """Current AI grades that differ from the current human consensus of the same image, disease and scheme."""
    consensus = Consensus.objects.filter(
        image_id=OuterRef("image_id"),
        disease_id=OuterRef("disease_id"),
        scheme_id=OuterRef("scheme_id"),
        is_current=True,
    )
    qs = access.scope(
        Grade.objects.filter(grader_type=GraderType.AI, is_current=True, option__isnull=False), user, "image__lab_unit"
    )
    qs = qs.annotate(consensus_option=Subquery(consensus.values("option_id")[:1])).filter(
        consensus_option__isnull=False
    )
    qs = qs.exclude(option_id=F("consensus_option"))
    if filters.hospital:
        qs = qs.filter(image__hospital_id=filters.hospital)
    if filters.lab_unit:
        qs = qs.filter(image__lab_unit_id=filters.lab_unit)
    if filters.disease:
        qs = qs.filter(disease_id=filters.disease)
    if filters.ai_model:
        qs = qs.filter(ai_model_id=filters.ai_model)
    if filters.date_from:
        qs = qs.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        qs = qs.filter(created_at__date__lte=filters.date_to)
    return qs.select_related(
        "image", "image__hospital", "image__lab_unit", "disease", "scheme", "option", "ai_model"
    ).order_by("-created_at", "-id")


def grades_for_images(pairs: list[tuple]) -> dict[tuple, dict]:
    """Current grades and consensus of (image_id, disease_id, scheme_id) triples, for side-by-side lists (two queries).

    Returns ``{(image_id, disease_id): {"primary": Grade, "secondary": Grade, "arbitration": Grade, "consensus": …}}``."""
    if not pairs:
        return {}
    image_ids = {p[0] for p in pairs}
    wanted = {(p[0], p[1], p[2]) for p in pairs}
    out: dict[tuple, dict] = defaultdict(dict)
    grades = (
        Grade.objects.filter(image_id__in=image_ids, is_current=True)
        .exclude(grader_type=GraderType.AI)
        .select_related("option", "grader")
    )
    for grade in grades:
        if (grade.image_id, grade.disease_id, grade.scheme_id) in wanted:
            out[(grade.image_id, grade.disease_id)][grade.grader_type] = grade
    for record in Consensus.objects.filter(image_id__in=image_ids, is_current=True).select_related("option"):
        if (record.image_id, record.disease_id, record.scheme_id) in wanted:
            out[(record.image_id, record.disease_id)]["consensus"] = record
    return out


# --- Progress ---------------------------------------------------------------------------------------------------------


def progress_queues(user) -> list[dict]:
    """Per lab unit, disease and slot: pending, in progress (leased, lease running) and done (three queries).

    The counts are grouped on ids alone (names come from two small queries), so the scan of a large task
    table aggregates integers rather than joined text."""
    from accounts.models import LabUnit

    now = timezone.now()
    active_lease = Q(status=GradingTask.Status.LEASED, lease_expires_at__gt=now)
    rows = list(
        access.scope(GradingTask.objects.exclude(status=GradingTask.Status.CANCELLED), user)
        .values("lab_unit_id", "disease_id", "slot")
        .annotate(
            pending=Count("id", filter=Q(status__in=GradingTask.OPEN) & ~active_lease),
            in_progress=Count("id", filter=active_lease),
            done=Count("id", filter=Q(status=GradingTask.Status.DONE)),
        )
        .order_by()
    )
    units = {
        unit.pk: unit
        for unit in LabUnit.objects.filter(pk__in={r["lab_unit_id"] for r in rows}).select_related("hospital")
    }
    diseases = {d.pk: d.code for d in Disease.objects.all()}
    for row in rows:
        unit = units[row["lab_unit_id"]]
        row.update(
            {
                "lab_unit__name": unit.name,
                "lab_unit__hospital__name": unit.hospital.name,
                "disease__code": diseases[row["disease_id"]],
            }
        )
    return sorted(
        rows, key=lambda r: (r["lab_unit__hospital__name"], r["lab_unit__name"], r["disease__code"], r["slot"])
    )


def progress_graders(user) -> list[dict]:
    """Per grader, on tasks of the user's lab units: done per slot, and leases running (two queries)."""
    now = timezone.now()
    tasks = access.scope(GradingTask.objects.all(), user)
    done = Q(status=GradingTask.Status.DONE)
    rows: dict[int, dict] = {}
    for row in (
        tasks.filter(done, completed_by__isnull=False)
        .values("completed_by_id", "completed_by__username")
        .annotate(
            primary=Count("id", filter=Q(slot=Slot.PRIMARY)),
            secondary=Count("id", filter=Q(slot=Slot.SECONDARY)),
            arbitration=Count("id", filter=Q(slot=Slot.ARBITRATION)),
        )
    ):
        rows[row["completed_by_id"]] = {
            "user_id": row["completed_by_id"],
            "username": row["completed_by__username"],
            "primary": row["primary"],
            "secondary": row["secondary"],
            "arbitration": row["arbitration"],
            "in_progress": 0,
        }
    for row in (
        tasks.filter(status=GradingTask.Status.LEASED, lease_expires_at__gt=now)
        .values("leased_to_id", "leased_to__username")
        .annotate(n=Count("id"))
    ):
        entry = rows.setdefault(
            row["leased_to_id"],
            {
                "user_id": row["leased_to_id"],
                "username": row["leased_to__username"],
                "primary": 0,
                "secondary": 0,
                "arbitration": 0,
            },
        )
        entry["in_progress"] = row["n"]
    for entry in rows.values():
        entry["done"] = entry["primary"] + entry["secondary"] + entry["arbitration"]
    return sorted(rows.values(), key=lambda r: r["username"])


def grader_history(user) -> QuerySet[Grade]:
    """The user's own grades, newest first, with what a history list shows."""
    return (
        Grade.objects.filter(grader=user)
        .select_related("option", "scheme", "disease", "task", "image")
        .order_by("-created_at", "-id")
    )
