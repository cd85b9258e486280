"""Reads of the pre-graded app, always inside the user's lab units (accounts.access)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from django.db.models import Count, QuerySet, Subquery

from accounts import access
from accounts.models import Role
from grading.models import AIModel, Grade, GradeOption, GradeScheme
from grading.selectors import normalise_value
from pregraded.models import GradeImport, PregradedVerification, ValueMapping

SIMILARITY_CUTOFF = 0.6


def imports_visible_to(user) -> QuerySet[GradeImport]:
    """Grade imports of the user's lab units, for users who may import grades (nobody else sees them)."""
    if not access.can(user, "import_grades"):
        return GradeImport.objects.none()
    return access.scope(GradeImport.objects.all(), user)


def grade_import_get(user, import_id) -> GradeImport:
    """One import inside the user's scope, or 404 (one of another lab unit looks exactly like a missing one)."""
    qs = GradeImport.objects.select_related(
        "hospital", "lab_unit", "lab_unit__hospital", "disease", "scheme", "grader", "ai_model", "created_by", "job"
    ).prefetch_related("scheme__options")
    if not access.can(user, "import_grades"):
        qs = qs.none()
    return access.get_in_scope(qs, user, "lab_unit", pk=import_id)


def recent_imports(user, limit: int = 20) -> QuerySet[GradeImport]:
    """The latest imports for the grades page: one query, whatever the number shown."""
    return (
        imports_visible_to(user)
        .select_related("lab_unit", "lab_unit__hospital", "disease", "grader", "ai_model", "created_by")
        .defer("values", "mapping", "summary", "columns")
        .order_by("-created_at")[:limit]
    )


def ai_models() -> QuerySet[AIModel]:
    return AIModel.objects.order_by("name", "version")


def ai_models_with_counts() -> QuerySet[AIModel]:
    """Every AI model version with the number of grades it gave (one query)."""
    return ai_models().annotate(grade_count=Count("grades"))


def grader_choices(user) -> list[dict]:
    """Users who may be named as the grader of an import, with their roles and the user's lab units they work in
    (two queries). The page filters them by grader type and lab unit."""
    scope_ids = access.lab_unit_ids(user)
    roles = (Role.RESIDENT, Role.OPHTHALMOLOGIST)
    people: dict[int, dict] = {}
    for role in roles:
        qs = access.users_with_role(role)
        if scope_ids is not None:
            qs = qs.filter(lab_units__in=scope_ids)
        for pk, username, first, last, unit in qs.values_list(
            "pk", "username", "first_name", "last_name", "lab_units"
        ).distinct():
            if unit is None or (scope_ids is not None and unit not in scope_ids):
                continue
            entry = people.setdefault(
                pk,
                {
                    "id": pk,
                    "username": username,
                    "name": f"{first} {last}".strip() or username,
                    "roles": set(),
                    "lab_units": set(),
                },
            )
            entry["roles"].add(str(role))
            entry["lab_units"].add(unit)
    return [
        {**p, "roles": sorted(p["roles"]), "lab_units": sorted(p["lab_units"])}
        for p in sorted(people.values(), key=lambda p: p["username"])
    ]


# --- The mapping step ------------------------------------------------------------------------------------------------


@dataclass
class ValueRow:
    """One distinct grade value of an import, how the scheme or a remembered answer reads it, and what to suggest."""

    index: int
    key: str
    value: str
    count: int
    auto: GradeOption | None
    needs_mapping: bool
    suggestion_action: str | None  # "option" | "no_grade" | "skip" | None
    suggestion: GradeOption | None
    suggestion_source: str | None  # "scheme" | "remembered" | "similarity" | None
    decided_action: str | None = None  # once the mapping was confirmed
    decided: GradeOption | None = None

    @property
    def suggestion_code(self) -> str | None:
        return self.suggestion.code if self.suggestion else None

    @property
    def choice(self) -> str:
        """The form value pre-selected on the mapping page."""
        action = self.decided_action or self.suggestion_action
        option = self.decided or self.suggestion
        if action == ValueMapping.Action.OPTION and option is not None:
            return f"option:{option.code}"
        return action or ""


def _candidates(options: list[GradeOption]) -> dict[str, GradeOption]:
    index: dict[str, GradeOption] = {}
    for layer in ("synonyms", "label", "code"):
        for option in options:
            values = (option.synonyms or []) if layer == "synonyms" else [getattr(option, layer)]
            for value in values:
                key = normalise_value(value)
                if key:
                    index[key] = option
    return index


def similar_option(key: str, options: list[GradeOption]) -> GradeOption | None:
    """The option whose code, label or synonym reads most like ``key`` (difflib ratio; a contained name of four
    characters or more counts as close), or None when nothing is close enough."""
    if not key:
        return None
    candidates = _candidates(options)
    best, best_score = None, 0.0
    for text, option in candidates.items():
        score = difflib.SequenceMatcher(None, key, text).ratio()
        if len(text) >= 4 and len(key) >= 4 and (text in key or key in text):
            score = max(score, 0.9)
        if score > best_score:
            best, best_score = option, score
    return best if best_score >= SIMILARITY_CUTOFF else None


def value_rows(grade_import: GradeImport) -> list[ValueRow]:
    """The distinct values of an import for the mapping step (one query besides the scheme's options).

    A value the scheme recognised is mapped automatically unless a remembered answer says otherwise; every other
    value needs the user, with the remembered answer suggested first, else the most similar option."""
    options = list(grade_import.scheme.options.all())
    active = [o for o in options if not o.retired]
    by_code = {o.code: o for o in options}
    by_pk = {o.pk: o for o in options}
    keys = [v["key"] for v in grade_import.values]
    remembered = (
        {m.key: m for m in ValueMapping.objects.filter(scheme_id=grade_import.scheme_id, key__in=keys)} if keys else {}
    )
    decided = grade_import.mapping or {}
    rows = []
    for index, entry in enumerate(grade_import.values):
        key = entry["key"]
        auto = by_code.get(entry.get("auto") or "")
        if auto is not None and auto.retired:
            auto = None
        memory = remembered.get(key)
        memory_option = by_pk.get(memory.option_id) if memory and memory.option_id else None
        agrees = memory is None or (memory.action == ValueMapping.Action.OPTION and memory_option == auto)
        if auto is not None and agrees:
            row = ValueRow(index, key, entry["value"], entry["count"], auto, False, "option", auto, "scheme")
        elif memory is not None and (memory.action != ValueMapping.Action.OPTION or memory_option is not None):
            row = ValueRow(
                index, key, entry["value"], entry["count"], auto, True, memory.action, memory_option, "remembered"
            )
        else:
            similar = similar_option(key, active)
            row = ValueRow(
                index,
                key,
                entry["value"],
                entry["count"],
                auto,
                True,
                "option" if similar else None,
                similar,
                "similarity" if similar else None,
            )
        if key in decided:
            row.decided_action = decided[key].get("action")
            row.decided = by_code.get(decided[key].get("option") or "")
        rows.append(row)
    return rows


def mapping_document(grade_import: GradeImport, rows: list[ValueRow] | None = None) -> tuple[list[dict], list[dict]]:
    """``(unmapped, mapped)`` as the API shows them."""
    rows = value_rows(grade_import) if rows is None else rows
    unmapped = [
        {
            "value": r.value,
            "count": r.count,
            "suggestion": r.suggestion_code,
            "suggestion_action": r.suggestion_action,
            "suggestion_label": r.suggestion.label if r.suggestion else None,
            "suggestion_source": r.suggestion_source,
        }
        for r in rows
        if r.needs_mapping
    ]
    mapped = [
        {"value": r.value, "count": r.count, "option": r.auto.code, "option_label": r.auto.label}
        for r in rows
        if not r.needs_mapping
    ]
    return unmapped, mapped


def scheme_options(scheme: GradeScheme) -> list[GradeOption]:
    """Options a value may be mapped to (retired ones take no new grades)."""
    return sorted((o for o in scheme.options.all() if not o.retired), key=lambda o: (o.ungradable, o.ordinal, o.pk))


def verification_for(image) -> PregradedVerification | None:
    return PregradedVerification.objects.select_related("verified_by").filter(image_id=image.pk).first()


def last_import_for(image) -> GradeImport | None:
    """The import whose job wrote the image's most recent imported grade (one query)."""
    latest = (
        Grade.objects.filter(image_id=image.pk, import_job__isnull=False)
        .order_by("-created_at", "-id")
        .values("import_job_id")[:1]
    )
    return GradeImport.objects.filter(job_id=Subquery(latest)).only("id", "original_name").first()


def reference_ai_models(user) -> list[dict]:
    """The AI models section of GET /api/reference/ (for users who import grades; one query)."""
    if not access.can(user, "import_grades"):
        return []
    return [{"id": m.pk, "name": m.name, "version": m.version, "description": m.description} for m in ai_models()]
