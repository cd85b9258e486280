"""The job side of a grade import: match rows to pre-graded images and write the grades through the grading app.

Transaction rule: an import is all-or-nothing. Every grade of the file is written in ONE transaction (the grading
app writes batch by batch inside it, with a constant number of queries per batch), together with the import's final
status and summary. Rows that cannot be imported (image not found, value skipped, ...) are not refusals: they are
listed in the summary and the other rows are imported. A refusal of the import as a whole (the grader lost their
role, an option was retired meanwhile, a database failure) rolls everything back: no grade of the file is written.
Because the status is committed with the grades, a job item run again after its worker died either finds the import
done (and returns its summary) or starts again from nothing.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from common.api import ServiceError
from common.gc import collection_paused
from common.text import MAX_DISPLAY_NAME, display_filename
from grading import services as grading_services
from jobs import services as job_services
from jobs.models import JobItem
from jobs.registry import ItemRejected
from pregraded.models import GradeImport, ValueMapping
from pregraded.services import imports, verification
from uploads import services as upload_services
from uploads.models import Image

log = logging.getLogger(__name__)

# Failure reasons (codes and what the summary says).
EMPTY_NAME = "empty_image_name"
DUPLICATE = "duplicate_row"
NOT_FOUND = "image_not_found"
NOT_PREGRADED = "image_not_pregraded"
SKIPPED = "value_skipped"
BAD_PROBABILITY = "invalid_probability"
REASONS = {
    EMPTY_NAME: "Image name is empty",
    DUPLICATE: "Duplicate row in the file",
    NOT_FOUND: "Image not found",
    NOT_PREGRADED: "Image not pre-graded",
    SKIPPED: "Value skipped",
    BAD_PROBABILITY: "Probability not a number or out of range",
}
SKIPPED_IN_RESULT = 1000
NAME_QUERY_CHUNK = 500

MSG_CANCELLED = "The import was cancelled before it ran; nothing was imported."
MSG_ROWS_GONE = "The rows of this import are no longer available on the server; upload the spreadsheet again."


def _probability(value) -> tuple[float | None, str | None]:
    """(number, None) or (None, reason). Blank is no probability; anything else must be a number in [0, 1]."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool):
        return None, f"AI probability must be a number between 0 and 1, got {value!r}"
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            hint = " (write 0.85, not 85%)" if text.endswith("%") else ""
            hint = hint or (" (use a dot as the decimal separator)" if "," in text else "")
            return None, f"AI probability must be a number between 0 and 1, got {text[:40]!r}{hint}"
    if not math.isfinite(number) or not 0 <= number <= 1:
        return None, f"AI probability must be between 0 and 1, got {value!r}"
    return number, None


def _clean_name(raw) -> str:
    """The image name of a row as names are stored (``display_filename``), "" when blank. Plain names (printable
    ASCII, no directory, nothing to strip, not too long: nearly all of them) are already in that form."""
    plain = isinstance(raw, str) and 0 < len(raw) <= MAX_DISPLAY_NAME and raw.isascii() and raw.isprintable()
    if plain and "/" not in raw and "\\" not in raw and raw[0] not in " ." and raw[-1] not in " .":
        return raw
    return display_filename(raw) if str(raw or "").strip() else ""


def _candidates(grade_import: GradeImport) -> dict[str, tuple[int, object]]:
    """Pre-graded images of the import's hospital, lab unit and disease by case-folded name: ``(how many share the
    name, id of the most recent upload)`` (one streamed query, oldest first so the most recent one stays)."""
    out: dict[str, tuple[int, object]] = {}
    qs = (
        Image.objects.filter(
            is_pregraded=True,
            hospital_id=grade_import.hospital_id,
            lab_unit_id=grade_import.lab_unit_id,
            disease_id=grade_import.disease_id,
        )
        .order_by("uploaded_at", "id")
        .values_list("original_name", "id")
    )
    for name, image_id in qs.iterator(chunk_size=5000):
        key = name.casefold()
        seen = out.get(key)
        out[key] = (seen[0] + 1 if seen else 1, image_id)
    return out


def _not_pregraded(grade_import: GradeImport, names: list[str]) -> set[str]:
    """Of these case-folded names, those of images in the same place that are not pre-graded."""
    found: set[str] = set()
    for start in range(0, len(names), NAME_QUERY_CHUNK):
        chunk = names[start : start + NAME_QUERY_CHUNK]
        qs = (
            Image.objects.filter(
                is_pregraded=False,
                hospital_id=grade_import.hospital_id,
                lab_unit_id=grade_import.lab_unit_id,
                disease_id=grade_import.disease_id,
            )
            .annotate(lname=Lower("original_name"))
            .filter(lname__in=chunk)
            .values_list("original_name", flat=True)
        )
        found |= {name.casefold() for name in qs}
    return found


def plan_rows(grade_import: GradeImport, rows: list[list]) -> tuple[list[dict], list[dict], list[dict]]:
    """``(grade rows for the grading app, failures, several_matches)`` in file order. Two queries at most per
    ``NAME_QUERY_CHUNK`` names that match no pre-graded image, one otherwise."""
    mapping = grade_import.mapping
    options = {o.code: o for o in grade_import.scheme.options.all()}
    candidates = _candidates(grade_import)
    is_ai = grade_import.grader_type == "ai"
    seen: dict[str, int] = {}
    planned: list[dict] = []
    failures: list[dict] = []
    unmatched: list[tuple[int, dict]] = []
    several: list[dict] = []

    def fail(row_number, name, code, detail=""):
        failures.append(
            {
                "row": row_number,
                "image_name": name,
                "code": code,
                "reason": REASONS[code] + (f": {detail}" if detail else ""),
            }
        )

    keys: dict[str, str] = {}  # value → its mapping key (a file holds a few distinct values)
    for row_number, raw_name, value, remarks, probability in rows:
        name = _clean_name(raw_name)
        if not name:
            fail(row_number, "", EMPTY_NAME)
            continue
        folded = name.casefold()
        if folded in seen:
            fail(
                row_number, name, DUPLICATE, f"{name} already appears in row {seen[folded]}; only that row is imported"
            )
            continue
        seen[folded] = row_number
        found = candidates.get(folded)
        if not found:
            unmatched.append((len(failures), {"row": row_number, "image_name": name}))
            fail(row_number, name, NOT_FOUND)
            continue
        matches, image_id = found  # the most recent upload
        if matches > 1:
            several.append({"row": row_number, "image_name": name, "matches": matches})
        if value.strip() in ("", "-", "–", "—"):
            option_id = None
        else:
            key = keys.get(value)
            if key is None:
                key = keys[value] = imports.value_key(value)
            decision = mapping.get(key) or {}
            action = decision.get("action")
            if action == ValueMapping.Action.SKIP:
                fail(row_number, name, SKIPPED, f"{value!r} was mapped to 'skip these rows'")
                continue
            if action == ValueMapping.Action.OPTION:
                option = options.get(decision.get("option"))
                if option is None:
                    raise ItemRejected(
                        f"The option {decision.get('option')!r} chosen for {value!r} no longer exists in "
                        f"{grade_import.scheme.name}; nothing was imported. Import the file again."
                    )
                option_id = option.pk
            elif action == ValueMapping.Action.NO_GRADE:
                option_id = None
            else:
                raise ItemRejected(f"The value {value!r} has no mapping; nothing was imported. Import the file again.")
        number = None
        if is_ai:
            number, problem = _probability(probability)
            if problem:
                fail(row_number, name, BAD_PROBABILITY, problem)
                continue
        planned.append(
            {
                "image_id": image_id,
                "option_id": option_id,
                "raw_value": value,
                "remarks": remarks,
                "probability": number,
            }
        )
    if unmatched:
        wrong_kind = _not_pregraded(grade_import, sorted({entry["image_name"].casefold() for _, entry in unmatched}))
        for index, entry in unmatched:
            if entry["image_name"].casefold() in wrong_kind:
                failures[index] = {
                    **failures[index],
                    "code": NOT_PREGRADED,
                    "reason": REASONS[NOT_PREGRADED] + ": it was uploaded as a regular image, not as a pre-graded one",
                }
            else:
                failures[index]["reason"] = (
                    REASONS[NOT_FOUND] + f": no pre-graded image with this name in {grade_import.lab_unit} for "
                    f"{grade_import.disease.name}"
                )
    return planned, failures, several


def _summary_text(summary: dict) -> str:
    parts = [f"Imported {summary['imported']:,} grade{'s' if summary['imported'] != 1 else ''}"]
    if summary["no_grade"]:
        parts[0] += f" and {summary['no_grade']:,} row{'s' if summary['no_grade'] != 1 else ''} with no grade"
    parts[0] += f" from {summary['rows']:,} row{'s' if summary['rows'] != 1 else ''}"
    if summary["failed"]:
        parts.append(f"{summary['failed']:,} row{'s' if summary['failed'] != 1 else ''} failed")
    if summary["several_matches"]:
        n = len(summary["several_matches"])
        parts.append(
            f"{n:,} image name{'s' if n != 1 else ''} matched more than one pre-graded image: the most recent upload "
            "was graded"
        )
    return "; ".join(parts) + "."


def _result(grade_import: GradeImport) -> dict:
    summary = grade_import.summary
    skipped = [
        {"name": f"Row {f['row']}: {f['image_name'] or '(no name)'}", "reason": f["reason"]}
        for f in summary.get("failures", [])[:SKIPPED_IN_RESULT]
    ]
    more = summary.get("failed", 0) - len(skipped)
    text = summary.get("text", "")
    if more > 0:
        text += f" The first {len(skipped):,} failed rows are listed here; the import page lists all of them."
    return {
        "summary": text,
        "skipped": skipped,
        "import_id": str(grade_import.pk),
        "imported": summary.get("imported", 0),
        "no_grade": summary.get("no_grade", 0),
        "failed": summary.get("failed", 0),
    }


def grade_import_run(*, item: JobItem) -> dict:
    """Write the grades of the import behind ``item`` (see the module docstring for the transaction rule)."""
    with collection_paused():
        return _run(item)


def _run(item: JobItem) -> dict:
    import_id = item.job.params.get("import_id")
    grade_import = (
        GradeImport.objects.select_related("scheme", "disease", "lab_unit", "lab_unit__hospital", "grader", "ai_model")
        .prefetch_related("scheme__options")
        .get(pk=import_id)
    )
    if grade_import.status == GradeImport.Status.DONE:
        return _result(grade_import)  # the worker died after the import committed: report it again
    if grade_import.status in (GradeImport.Status.CANCELLED, GradeImport.Status.ERROR):
        raise ItemRejected(MSG_CANCELLED if grade_import.status == GradeImport.Status.CANCELLED else grade_import.error)
    GradeImport.objects.filter(pk=grade_import.pk, status=GradeImport.Status.QUEUED).update(
        status=GradeImport.Status.PROCESSING, updated_at=timezone.now()
    )
    try:
        rows = imports.load_rows(grade_import)
    except FileNotFoundError:
        raise ItemRejected(MSG_ROWS_GONE) from None
    job_services.item_heartbeat(item=item)
    planned, failures, several = plan_rows(grade_import, rows)
    with transaction.atomic():
        try:
            counts = grading_services.grades_import_bulk(
                rows=planned,
                grader_type=grade_import.grader_type,
                disease=grade_import.disease,
                scheme=grade_import.scheme,
                grader=grade_import.grader,
                ai_model=grade_import.ai_model,
                import_job=item.job,
            )
        except ServiceError as exc:
            raise ItemRejected(f"Nothing was imported: {exc.message}") from None
        verification.verifications_mark_imported(grade_import=grade_import, job=item.job)
        failure_counts: dict[str, int] = defaultdict(int)
        for failure in failures:
            failure_counts[failure["code"]] += 1
        summary = {
            "rows": len(rows),
            "imported": counts["imported"],
            "no_grade": counts["no_grade"],
            "failed": len(failures),
            "superseded": counts["superseded"],
            "slots_filled": counts.get("slots_filled", 0),
            "consensus_recorded": counts.get("consensus_recorded", 0),
            "tasks_created": counts.get("tasks_created", 0),
            "failure_counts": dict(failure_counts),
            "failures": failures,
            "several_matches": several,
        }
        summary["text"] = _summary_text(summary)
        grade_import.summary = summary
        grade_import.status = GradeImport.Status.DONE
        grade_import.error = ""
        grade_import.finished_at = timezone.now()
        grade_import.save(update_fields=["summary", "status", "error", "finished_at", "updated_at"])
        _audit(grade_import, item)
        transaction.on_commit(lambda: imports.unstage_files(grade_import))
    return _result(grade_import)


def _audit(grade_import: GradeImport, item: JobItem) -> None:
    job = item.job
    summary = grade_import.summary
    upload_services.audit_record(
        action="grades.imported",
        actor=job.created_by,
        ip=job.client_ip,
        user_agent=job.user_agent,
        object_type="grade_import",
        object_id=str(grade_import.pk),
        lab_unit_id=grade_import.lab_unit_id,
        summary=f"{grade_import.get_grader_type_display()} grades from {grade_import.original_name}: "
        f"{summary['imported']} imported, {summary['failed']} failed",
        details={
            "job_id": str(job.pk),
            "grader_type": grade_import.grader_type,
            "grader_id": grade_import.grader_id,
            "ai_model": str(grade_import.ai_model) if grade_import.ai_model_id else None,
            "disease": grade_import.disease.code,
            "scheme": grade_import.scheme.code,
            "file_name": grade_import.original_name,
            "rows": summary["rows"],
            "imported": summary["imported"],
            "no_grade": summary["no_grade"],
            "failed": summary["failed"],
            "superseded": summary["superseded"],
        },
    )


def grade_import_rejected(item: JobItem, message: str) -> None:
    """The job item ended in error (refused, crashed, or lost with its worker): the import says so, nothing of it
    was written, and its staged files go."""
    import_id = item.job.params.get("import_id")
    grade_import = GradeImport.objects.filter(pk=import_id).first()
    if grade_import is None:
        return
    GradeImport.objects.filter(
        pk=grade_import.pk, status__in=[GradeImport.Status.QUEUED, GradeImport.Status.PROCESSING]
    ).update(status=GradeImport.Status.ERROR, error=message, finished_at=timezone.now(), updated_at=timezone.now())
    imports.unstage_files(grade_import)
