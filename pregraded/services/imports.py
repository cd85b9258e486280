"""The request side of a grade import: check who imports what, read the spreadsheet, decide which values need the
user (the mapping step), and queue the job that writes the grades. Nothing here writes a grade.

A file refused here (wrong type, missing column, formulas without results, too many rows, ...) leaves nothing
behind: the staged copies are deleted and no record is kept.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from accounts import access
from common.api import Conflict, Forbidden, ServiceError
from common.gc import collection_paused
from common.text import display_filename
from grading import selectors as grading_selectors
from grading.models import GradeOption
from jobs import services as job_services
from pregraded import selectors, spreadsheets
from pregraded.models import GradeImport, GraderType, ValueMapping
from pregraded.services import registry
from uploads import services as upload_services

log = logging.getLogger(__name__)

JOB_KIND = "grade_import"
MAX_UNRECOGNISED_VALUES = 200

MSG_NOT_ALLOWED = "Your role does not allow importing grades: only data managers and administrators import grades."
MSG_GRADER_TYPE = "Choose the grader type: resident, resident2 or ai."
MSG_NO_FILE = "No selected file"
MSG_TOO_LARGE = "The spreadsheet is too large (max {max_mb}MB). Split it into several files."
MSG_NO_SCHEME = (
    "{disease} has no active grade scheme, so its grades cannot be imported: ask an administrator to activate one."
)
MSG_TOO_MANY_VALUES = (
    "The {column} column has {count:,} different values that the {scheme} scheme does not recognise (for example "
    "{examples}). A grade column holds a few distinct grades: check that this is the right column and grader type."
)
MSG_NOT_OPEN = "This import is {status}: its mapping can no longer be changed."
MSG_UNKNOWN_VALUE = "{value!r} is not a grade value of this file. Its values are: {values}."
MSG_UNKNOWN_OPTION = "Unknown option {code!r} for {value!r}. Use one of {codes}, null for no grade, or 'skip'."
MSG_RETIRED_OPTION = "Option {code!r} of {scheme} is retired and takes no new grades. Use one of {codes}."
MSG_UNMAPPED = "Map every value before importing; still unmapped: {values}."
MSG_MAPPING_SHAPE = 'Send the mapping as {"mapping": {"<value>": "<option code>" | null | "skip"}}.'


@dataclass
class Decision:
    action: str  # ValueMapping.Action
    option: GradeOption | None = None

    def as_json(self) -> dict:
        return {"action": self.action, "option": self.option.code if self.option else None}


def value_key(text: str) -> str:
    """How values are grouped and matched: the grading app's normal form (case, spaces, punctuation and ``.0`` do not
    matter); a value made only of punctuation keeps its own text."""
    return grading_selectors.normalise_value(text) or f"~{text.strip().casefold()}"


def _staging():
    return storages["staging"]


def _stage_rows(rows: list[spreadsheets.ParsedRow]) -> str:
    payload = json.dumps(
        [[r.row, r.image_name, r.value, r.remarks, r.probability] for r in rows], separators=(",", ":")
    ).encode()
    return _staging().save(f"grade-imports/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}.json", ContentFile(payload))


def load_rows(grade_import: GradeImport) -> list[list]:
    """The rows read from the spreadsheet, as staged at upload: ``[row, image_name, value, remarks, probability]``."""
    with _staging().open(grade_import.rows_file, "rb") as fh:
        return json.loads(fh.read())


def unstage_files(grade_import: GradeImport) -> None:
    for name in (grade_import.staged_file, grade_import.rows_file):
        upload_services.unstage(name)


def _distinct_values(parsed: spreadsheets.ParsedSheet, scheme) -> tuple[list[dict], int]:
    # A file holds a few distinct values: each text is normalised once (in the order the file first shows them).
    per_text = Counter(row.value for row in parsed.rows)
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    blanks = 0
    for text, count in per_text.items():
        if grading_selectors.is_blank_value(text):
            blanks += count
            continue
        key = value_key(text)
        counts[key] += count
        shown.setdefault(key, text)
    values = []
    for key, count in counts.most_common():
        option = grading_selectors.option_match(scheme, shown[key])
        values.append({"key": key, "value": shown[key], "count": count, "auto": option.code if option else None})
    return values, blanks


def _check_file(uploaded) -> None:
    if uploaded is None or not (uploaded.name or "").strip():
        raise ServiceError(MSG_NO_FILE)
    max_mb = settings.PREGRADED_IMPORT_MAX_FILE_MB
    if (uploaded.size or 0) > max_mb * 1024 * 1024:
        raise ServiceError(MSG_TOO_LARGE.format(max_mb=max_mb))


def grade_import_create(*, user, data, uploaded, client_ip: str | None = None, user_agent: str = "") -> GradeImport:
    """Check the request and the spreadsheet, and record the import.

    ``data``: ``grader_type``, ``hospital``, ``lab_unit``, ``disease`` (ids or codes), ``grader`` (id or username) for
    resident / resident2, ``ai_model`` (id) or ``ai_model_name`` + ``ai_model_version`` (+ ``ai_model_description``)
    for AI, and optionally ``review`` (stop at the mapping step even when every value was recognised).
    When every value is recognised (and no review was asked for) the import is queued at once.
    """
    if not access.can(user, "import_grades"):
        raise Forbidden(MSG_NOT_ALLOWED)
    grader_type = str(data.get("grader_type") or "").strip().lower()
    if grader_type not in GraderType.values:
        raise ServiceError(MSG_GRADER_TYPE)
    target = upload_services.resolve_target(
        user=user, data=data, required=("hospital", "lab_unit", "disease"), action="import_grades"
    )
    scheme = grading_selectors.scheme_for(target.disease)
    if scheme is None:
        raise ServiceError(MSG_NO_SCHEME.format(disease=target.disease.name))
    grader = ai_model = None
    if grader_type == GraderType.AI:
        ai_model = registry.ai_model_resolve(
            model_id=data.get("ai_model"),
            name=data.get("ai_model_name"),
            version=data.get("ai_model_version"),
            description=data.get("ai_model_description") or "",
        )
    else:
        grader = registry.grader_resolve(value=data.get("grader"), grader_type=grader_type, lab_unit=target.lab_unit)
    _check_file(uploaded)
    try:
        with collection_paused():
            parsed = spreadsheets.read_grade_sheet(
                uploaded, grader_type=grader_type, max_rows=settings.PREGRADED_IMPORT_MAX_ROWS
            )
    except spreadsheets.SheetError as exc:
        raise ServiceError(exc.message) from None
    values, blanks = _distinct_values(parsed, scheme)
    unrecognised = [v for v in values if v["auto"] is None]
    if len(unrecognised) > MAX_UNRECOGNISED_VALUES:
        raise ServiceError(
            MSG_TOO_MANY_VALUES.format(
                column=spreadsheets.grade_column(grader_type),
                count=len(unrecognised),
                scheme=scheme.name,
                examples=", ".join(repr(v["value"]) for v in unrecognised[:5]),
            )
        )
    review = upload_services.parse_bool(data.get("review"))
    staged = rows_file = ""
    try:
        staged = upload_services.stage_file(uploaded)
        with collection_paused():
            rows_file = _stage_rows(parsed.rows)
        with transaction.atomic():
            grade_import = GradeImport.objects.create(
                status=GradeImport.Status.NEEDS_MAPPING,
                grader_type=grader_type,
                hospital=target.hospital,
                lab_unit=target.lab_unit,
                disease=target.disease,
                scheme=scheme,
                grader=grader,
                ai_model=ai_model,
                created_by=user,
                original_name=display_filename(uploaded.name),
                file_format=parsed.format,
                staged_file=staged,
                rows_file=rows_file,
                sheet_name=parsed.sheet[:100],
                header_row=parsed.header_row,
                columns=parsed.columns[:200],
                row_count=len(parsed.rows),
                no_grade_count=blanks,
                values=values,
                review_requested=review,
            )
            rows = selectors.value_rows(grade_import)
            if not review and not any(r.needs_mapping for r in rows):
                decisions = {r.key: Decision(ValueMapping.Action.OPTION, r.auto) for r in rows}
                _queue(grade_import, decisions, user=user, client_ip=client_ip, user_agent=user_agent)
    except BaseException:
        upload_services.unstage(staged)
        upload_services.unstage(rows_file)
        raise
    return grade_import


def _options_text(scheme) -> str:
    return ", ".join(o.code for o in selectors.scheme_options(scheme))


def _decision(target, *, value: str, scheme, options_by_code: dict[str, GradeOption]) -> Decision:
    """One answer of the mapping: an option code, None / "" for no grade, "skip", or the object form
    ``{"action": "option" | "no_grade" | "skip", "option": code}``."""
    if isinstance(target, dict):
        action = str(target.get("action") or "").strip().lower()
        if action == ValueMapping.Action.OPTION:
            target = target.get("option")
            if target in (None, ""):
                raise ServiceError(MSG_UNKNOWN_OPTION.format(code="", value=value, codes=_options_text(scheme)))
        elif action in (ValueMapping.Action.NO_GRADE, ValueMapping.Action.SKIP):
            return Decision(action)
        else:
            raise ServiceError(MSG_MAPPING_SHAPE)
    if target is None or (isinstance(target, str) and not target.strip()):
        return Decision(ValueMapping.Action.NO_GRADE)
    if not isinstance(target, str | int):
        raise ServiceError(MSG_MAPPING_SHAPE)
    code = str(target).strip()
    option = options_by_code.get(code.casefold())
    if option is None and code.casefold() == ValueMapping.Action.SKIP:
        return Decision(ValueMapping.Action.SKIP)
    if option is None:
        raise ServiceError(MSG_UNKNOWN_OPTION.format(code=code[:40], value=value, codes=_options_text(scheme)))
    if option.retired:
        raise ServiceError(MSG_RETIRED_OPTION.format(code=option.code, scheme=scheme.name, codes=_options_text(scheme)))
    return Decision(ValueMapping.Action.OPTION, option)


def grade_import_map(*, user, import_id, mapping, client_ip: str | None = None, user_agent: str = "") -> GradeImport:
    """Confirm the mapping step and queue the import.

    ``mapping``: ``{value: answer}`` for every value that needs the user (values the scheme recognised may be given
    too, to change them). Values are matched like grades are (case, spaces and punctuation ignored). Answers given
    for values that needed the user, or that change an automatic match, are remembered for the scheme.
    """
    if not access.can(user, "import_grades"):
        raise Forbidden(MSG_NOT_ALLOWED)
    if not isinstance(mapping, dict):
        raise ServiceError(MSG_MAPPING_SHAPE)
    found = selectors.grade_import_get(user, import_id)
    with transaction.atomic():
        grade_import = GradeImport.objects.select_for_update().get(pk=found.pk)
        grade_import.scheme = found.scheme  # with its options prefetched
        if grade_import.status != GradeImport.Status.NEEDS_MAPPING:
            raise Conflict(MSG_NOT_OPEN.format(status=grade_import.get_status_display().lower()))
        scheme = grade_import.scheme
        rows = selectors.value_rows(grade_import)
        by_key = {r.key: r for r in rows}
        options_by_code = {o.code.casefold(): o for o in scheme.options.all()}
        given: dict[str, Decision] = {}
        for raw_value, target in mapping.items():
            key = value_key(str(raw_value))
            row = by_key.get(key) or by_key.get(str(raw_value))
            if row is None:
                listed = ", ".join(repr(r.value) for r in rows[:20]) + (" …" if len(rows) > 20 else "")
                raise ServiceError(MSG_UNKNOWN_VALUE.format(value=str(raw_value)[:60], values=listed or "none"))
            given[row.key] = _decision(target, value=row.value, scheme=scheme, options_by_code=options_by_code)
        missing = [r for r in rows if r.needs_mapping and r.key not in given]
        if missing:
            listed = ", ".join(f"{r.value!r} ({r.count} row{'s' if r.count != 1 else ''})" for r in missing[:20])
            raise ServiceError(MSG_UNMAPPED.format(values=listed + (" …" if len(missing) > 20 else "")))
        decisions = {r.key: given.get(r.key) or Decision(ValueMapping.Action.OPTION, r.auto) for r in rows}
        _remember(scheme, rows, given, user)
        grade_import.mapped_by = user
        _queue(grade_import, decisions, user=user, client_ip=client_ip, user_agent=user_agent)
    return grade_import


def _remember(scheme, rows, given: dict[str, Decision], user) -> None:
    """Keep the user's answers for values that needed them or that change an automatic match (one statement)."""
    keep = []
    for row in rows:
        decision = given.get(row.key)
        if decision is None:
            continue
        changes_auto = not (decision.action == ValueMapping.Action.OPTION and decision.option == row.auto)
        if row.needs_mapping or changes_auto:
            keep.append(
                ValueMapping(
                    scheme=scheme,
                    key=row.key[:200],
                    value=row.value[:200],
                    action=decision.action,
                    option=decision.option,
                    confirmed_by=user,
                    updated_at=timezone.now(),
                )
            )
    if keep:
        ValueMapping.objects.bulk_create(
            keep,
            update_conflicts=True,
            unique_fields=["scheme", "key"],
            update_fields=["value", "action", "option", "confirmed_by", "updated_at"],
        )


def _queue(grade_import: GradeImport, decisions: dict[str, Decision], *, user, client_ip, user_agent) -> None:
    """Record the final mapping and create the job (sent to a worker after the transaction commits)."""
    job = job_services.job_create(
        kind=JOB_KIND,
        user=user,
        items=[job_services.ItemSpec(filename=grade_import.original_name, size=None)],
        lab_unit=grade_import.lab_unit,
        params={"import_id": str(grade_import.pk), "grader_type": grade_import.grader_type},
        client_ip=client_ip,
        user_agent=user_agent,
    )
    grade_import.mapping = {key: d.as_json() for key, d in decisions.items()}
    grade_import.status = GradeImport.Status.QUEUED
    grade_import.job = job
    grade_import.save(update_fields=["mapping", "status", "job", "mapped_by", "updated_at"])


def grade_import_cancel(*, user, import_id) -> GradeImport:
    """Drop an import waiting at the mapping step; its staged files are deleted. Nothing was imported."""
    if not access.can(user, "import_grades"):
        raise Forbidden(MSG_NOT_ALLOWED)
    found = selectors.grade_import_get(user, import_id)
    with transaction.atomic():
        grade_import = GradeImport.objects.select_for_update().get(pk=found.pk)
        if grade_import.status != GradeImport.Status.NEEDS_MAPPING:
            raise Conflict(
                f"This import is {grade_import.get_status_display().lower()}: only an import waiting for its mapping "
                "can be cancelled."
            )
        grade_import.status = GradeImport.Status.CANCELLED
        grade_import.finished_at = timezone.now()
        grade_import.save(update_fields=["status", "finished_at", "updated_at"])
        transaction.on_commit(lambda: unstage_files(grade_import))
    return grade_import
