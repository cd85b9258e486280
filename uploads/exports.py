"""CSV and XLSX exports of the dashboard's image lists.

- Streamed: rows are read in keyset batches of ``EXPORT_BATCH`` (a constant number of queries per batch), CSV is
  sent as it is produced and XLSX is written in constant-memory mode to a temporary file that is then streamed, so
  100,000 rows never sit in memory at once.
- No patient identifiers: images carry none, and the export leaves out the upload's IP address and user agent.
- Formula injection neutralised: a text cell that a spreadsheet would run as a formula (starting with = + - @, a tab
  or a carriage return, even after spaces) is prefixed with an apostrophe, in CSV and XLSX alike.
- On request (``include=``) registered providers add columns (the grading app adds consensus and AI grades), and
  ``links`` adds each image's download URL so a training set can be pulled with an API token in one call.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlencode

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from uploads import hooks, pagination, selectors
from uploads.filters import ImageFilters

EXPORT_BATCH = 2000
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")

BASE_COLUMNS = (
    "image_id",
    "file_name",
    "hospital_code",
    "hospital",
    "lab_unit_code",
    "lab_unit",
    "camera_code",
    "camera",
    "disease",
    "area",
    "mydriatic",
    "source",
    "pre_graded",
    "dataset_label",
    "uploaded_by",
    "uploaded_at",
    "width",
    "height",
    "size_bytes",
    "mime",
    "md5",
    "grading_status",
    "edited",
)


class ExportError(ValueError):
    pass


def neutralise(value):
    """Text a spreadsheet would evaluate as a formula becomes plain text (OWASP CSV injection guidance)."""
    if isinstance(value, str) and value and value.lstrip(" ")[:1] in DANGEROUS_START:
        return "'" + value
    return value


@dataclass
class ExportRequest:
    format: str
    filters: ImageFilters
    include: list[str] = field(default_factory=list)

    @property
    def links(self) -> bool:
        return "links" in self.include


def parse_request(params) -> tuple[str, list[str]]:
    """``format`` and ``include`` of an export request; raises ExportError with what is allowed."""
    fmt = str(params.get("format") or "csv").strip().lower()
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}. Allowed: csv, xlsx.")
    include: list[str] = []
    raw = params.getlist("include") if hasattr(params, "getlist") else [params.get("include") or ""]
    available = ["links", *hooks.export_providers()]
    for part in ",".join(str(v) for v in raw).split(","):
        part = part.strip().lower()
        if not part or part in include:
            continue
        if part not in available:
            raise ExportError(
                f"Unknown include value {part!r}. Available in this installation: {', '.join(available)}."
            )
        include.append(part)
    return fmt, include


def columns_for(include: list[str]) -> list[str]:
    providers = hooks.export_providers()
    columns = list(BASE_COLUMNS)
    for key in include:
        if key in providers:
            columns += [c for c in providers[key].columns if c not in columns]
    if "links" in include:
        columns.append("download_url")
    return columns


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _base_row(image) -> dict:
    return {
        "image_id": str(image.pk),
        "file_name": image.original_name,
        "hospital_code": image.hospital.code,
        "hospital": image.hospital.name,
        "lab_unit_code": image.lab_unit.code,
        "lab_unit": image.lab_unit.name,
        "camera_code": image.camera.code if image.camera_id else "",
        "camera": image.camera.name if image.camera_id else "",
        "disease": image.disease.code,
        "area": image.area.code if image.area_id else "",
        "mydriatic": _yes_no(image.mydriatic),
        "source": image.source,
        "pre_graded": _yes_no(image.is_pregraded),
        "dataset_label": image.dataset_label,
        "uploaded_by": image.uploaded_by.username,
        "uploaded_at": timezone.localtime(image.uploaded_at).isoformat(timespec="seconds"),
        "width": image.width,
        "height": image.height,
        "size_bytes": image.size,
        "mime": image.mime,
        "md5": image.md5,
        "grading_status": image.grading_status,
        "edited": _yes_no(bool(image.edited_file)),
    }


def rows(*, user, request: ExportRequest, link_base) -> Iterator[list]:
    """Every matching row as a list of cell values in ``columns_for(include)`` order, batch by batch."""
    columns = columns_for(request.include)
    providers = [p for key, p in hooks.export_providers().items() if key in request.include]
    qs = selectors.images_filtered(user, request.filters)
    after = None
    while True:
        page = pagination.paginate(qs, sort=request.filters.sort, per_page=EXPORT_BATCH, after=after)
        if not page.rows:
            return
        ids = [image.pk for image in page.rows]
        extra: dict = {}
        for provider in providers:
            for image_id, values in (provider.fetch(ids, user) or {}).items():
                extra.setdefault(image_id, {}).update(values)
        for image in page.rows:
            row = _base_row(image)
            row.update(extra.get(image.pk, {}))
            if request.links:
                row["download_url"] = link_base(image.pk)
            yield [neutralise(row.get(column, "")) for column in columns]
        if not page.next_token:
            return
        after = page.next_token


class _Echo:
    def write(self, value):
        return value


def _filename(fmt: str) -> str:
    return f"images-{timezone.localtime():%Y%m%d-%H%M%S}.{fmt}"


def response(*, user, request: ExportRequest, http_request) -> StreamingHttpResponse | FileResponse:
    def link_base(image_id) -> str:
        return http_request.build_absolute_uri(reverse("api:image-file", args=[image_id]))

    columns = columns_for(request.include)
    data = rows(user=user, request=request, link_base=link_base)
    if request.format == "csv":
        writer = csv.writer(_Echo())

        def stream():
            yield writer.writerow(columns)
            for row in data:
                yield writer.writerow(row)

        out = StreamingHttpResponse(stream(), content_type=FORMATS["csv"])
        out["Content-Disposition"] = f'attachment; filename="{_filename("csv")}"'
    else:
        out = FileResponse(
            _xlsx(columns, data), as_attachment=True, filename=_filename("xlsx"), content_type=FORMATS["xlsx"]
        )
    out["Cache-Control"] = "no-store"
    return out


def _xlsx(columns: list[str], data) -> IO[bytes]:
    import xlsxwriter

    # Closed (and so removed) by the FileResponse once it has been sent.
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this function by design
    workbook = xlsxwriter.Workbook(
        handle,
        {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
    )
    sheet = workbook.add_worksheet("Images")
    bold = workbook.add_format({"bold": True})
    for col, name in enumerate(columns):
        sheet.write_string(0, col, name, bold)
    sheet.freeze_panes(1, 0)
    for row_index, row in enumerate(data, start=1):
        for col, value in enumerate(row):
            if isinstance(value, bool) or value is None:
                sheet.write_string(row_index, col, "" if value is None else _yes_no(value))
            elif isinstance(value, int | float):
                sheet.write_number(row_index, col, value)
            else:
                sheet.write_string(row_index, col, str(value))
    workbook.close()
    handle.seek(0)
    return handle


def record(*, user, export: ExportRequest, origin) -> None:
    """Data leaving the system is audited: who exported which filters, in which format, with which extras."""
    from uploads import audit

    pairs = export.filters.as_pairs()
    audit.record(
        audit.Entry(
            action=audit.Action.IMAGES_EXPORTED,
            object_type="export",
            summary=f"Exported images as {export.format.upper()}"
            + (f" with {', '.join(export.include)}" if export.include else "")
            + (f"; filters: {urlencode(pairs)}" if pairs else "; no filters"),
            details={"format": export.format, "include": export.include, "filters": pairs},
        ),
        origin,
    )
