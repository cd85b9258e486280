"""Pages of ZIP ingestion: the upload form, the list of encounters to verify, and the verification page."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.storage import storages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts import access
from accounts.models import Disease
from common.api import ServiceError
from common.http import client_ip, user_agent
from remedio import archive as safe_zip
from remedio import selectors
from remedio.models import Encounter, Field, Laterality, Report
from remedio.services import upload as upload_service
from remedio.services import verification
from uploads import selectors as upload_selectors

PAGE_SIZE = 50


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_http_methods(["GET", "POST"])
def upload_files(request):
    """The ZIP upload form; the browser sends it with XHR (JSON answer) and follows to the processing page."""
    form_context = upload_selectors.upload_form_context(request.user)
    context = {
        "title": "ZIP Upload",
        "hospitals": form_context["hospitals"],
        "lab_units": form_context["lab_units"],
        "cameras": form_context["cameras"],
        "limits": {
            "max_bytes": settings.PER_FILE_MAX_BYTES,
            "max_size": safe_zip.human_size(settings.PER_FILE_MAX_BYTES),
            "max_files": settings.MAX_FILES_PER_UPLOAD,
        },
        "allowed": access.can(request.user, "upload_zip"),
        "form": request.POST if request.method == "POST" else {},
    }
    if request.method != "POST":
        return render(request, "remedio/upload.html", context)
    try:
        target = upload_service.resolve_zip_target(user=request.user, data=request.POST)
        try:
            client_rejected = json.loads(request.POST.get("client_rejected") or "[]")
        except ValueError:
            client_rejected = []
        job = upload_service.zip_upload_create(
            user=request.user,
            target=target,
            files=request.FILES.getlist("files"),
            client_ip=client_ip(request),
            user_agent=user_agent(request),
            client_rejected=client_rejected if isinstance(client_rejected, list) else [],
        )
    except ServiceError as exc:
        if _wants_json(request):
            return JsonResponse({"detail": exc.message}, status=exc.status_code)
        return render(request, "remedio/upload.html", {**context, "error": exc.message}, status=exc.status_code)
    url = reverse("jobs:processing", args=[job.pk])
    if _wants_json(request):
        return JsonResponse({"job_id": str(job.pk), "status": job.status, "processing_url": url}, status=202)
    return redirect(url)


def _require_verifier(user) -> None:
    if not access.can(user, "verify_encounters"):
        raise PermissionDenied(verification.MSG_NOT_ALLOWED)


@login_required
def encounter_list(request):
    """Encounters awaiting verification (or verified), by lab unit."""
    _require_verifier(request.user)
    status = request.GET.get("status", Encounter.Status.AWAITING)
    if status not in (*Encounter.Status.values, "all"):
        status = Encounter.Status.AWAITING
    try:
        lab_unit = int(request.GET.get("lab_unit") or 0) or None
    except ValueError:
        lab_unit = None
    rows = selectors.encounter_rows(request.user, lab_unit=lab_unit, status=None if status == "all" else status)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "remedio/encounter_list.html",
        {
            "page": page,
            "status": status,
            "lab_unit": lab_unit,
            "lab_units": access.lab_units(request.user),
            "summary": selectors.awaiting_counts(request.user),
            "statuses": [*Encounter.Status.choices, ("all", "All")],
        },
    )


def _page_context(request, encounter, *, posted=None, errors=None) -> dict:
    """What the verification page shows: stored values, or the submitted ones after a refused submission."""
    identifiers = access.can(request.user, "view_identifiers")
    links = list(encounter.images.all())
    encounter_reports = list(encounter.reports.all())
    default_codes = verification.default_diseases(encounter, encounter_reports, [link.image for link in links])
    chosen = posted.getlist("diseases") if posted is not None else default_codes

    def value(key, stored):
        return posted.get(key, "") if posted is not None else stored

    image_rows = []
    for link in links:
        key = str(link.image_id)
        gradable = "" if link.gradable is None else ("yes" if link.gradable else "no")
        image_rows.append(
            {
                "link": link,
                "key": key,
                "laterality": value(f"lat-{key}", link.laterality or link.laterality_suggestion),
                "field": value(f"field-{key}", link.field),
                "gradable": value(f"gradable-{key}", gradable),
                "mask": value(f"mask-{key}", "confirm"),
                "boxes": value(f"boxes-{key}", json.dumps(link.mask_boxes)),
                "suggested": json.dumps(link.mask_boxes),
                "src": reverse("remedio:image-original", args=[link.image_id])
                if link.original_name and identifiers
                else reverse("image-file", args=[link.image_id]),
            }
        )
    report_rows = []
    for report in encounter_reports:
        prefix = f"r{report.pk}-"
        report_rows.append(
            {
                "report": report,
                "prefix": prefix,
                "raw_text": selectors.raw_text_of(report, identifiers=identifiers),
                "dr_result": value(prefix + "dr_result", report.dr_result),
                "amd_result": value(prefix + "amd_result", report.amd_result),
                "glaucoma_result": value(prefix + "glaucoma_result", report.glaucoma_result),
                "vcdr_od": value(prefix + "vcdr_od", "" if report.vcdr_od is None else report.vcdr_od),
                "vcdr_os": value(prefix + "vcdr_os", "" if report.vcdr_os is None else report.vcdr_os),
                "unusable": value(prefix + "unusable", "yes" if report.status == Report.Status.UNUSABLE else ""),
            }
        )
    patient = None
    if identifiers:
        stored = selectors.identifiers_of(encounter)
        patient = {name: value(name, "" if stored[name] is None else stored[name]) for name in stored}
    return {
        "encounter": encounter,
        "patient": patient,
        "image_rows": image_rows,
        "report_rows": report_rows,
        "ai_results": selectors.current_ai_results([encounter.pk]).get(encounter.pk, []),
        "diseases": Disease.objects.all(),
        "chosen_diseases": {c.upper() for c in chosen},
        "result_choices": verification.RESULT_CHOICES,
        "lateralities": Laterality.choices,
        "fields": Field.choices,
        "errors": errors or [],
        "editable": encounter.status == Encounter.Status.AWAITING,
        "can_see_identifiers": identifiers,
    }


def _decisions_from_post(post, encounter, user) -> dict:
    """Service arguments from the verification form."""
    images = []
    for link in encounter.images.all():
        key = str(link.image_id)
        gradable = post.get(f"gradable-{key}")
        try:
            boxes = json.loads(post.get(f"boxes-{key}") or "[]")
        except ValueError:
            boxes = None
        images.append(
            verification.ImageDecision(
                image_id=key,
                laterality=post.get(f"lat-{key}", ""),
                field=post.get(f"field-{key}", ""),
                gradable=None if gradable is None else gradable == "yes",
                mask=post.get(f"mask-{key}", "confirm"),
                boxes=boxes,
            )
        )
    report_decisions = []
    for report in encounter.reports.all():
        prefix = f"r{report.pk}-"
        values = {name: post.get(prefix + name, "") for name in verification.REPORT_FIELDS if prefix + name in post}
        report_decisions.append(
            verification.ReportDecision(
                report_id=report.pk, values=values, unusable=post.get(prefix + "unusable") == "yes"
            )
        )
    patient = None
    if access.can(user, "view_identifiers") and "patient_id" in post:
        patient = verification.PatientFields(
            name=post.get("name", ""), patient_id=post.get("patient_id", ""), age=post.get("age", ""),
            sex=post.get("sex", ""),
        )  # fmt: skip
    return {
        "images": images,
        "reports": report_decisions,
        "patient": patient,
        "diseases": post.getlist("diseases"),
    }


@login_required
@require_http_methods(["GET", "POST"])
def encounter_verify(request, encounter_id: int):
    _require_verifier(request.user)
    encounter = selectors.encounter_get(request.user, encounter_id)
    if request.method == "POST":
        try:
            outcome = verification.encounter_verify(
                user=request.user,
                encounter_id=encounter.pk,
                **_decisions_from_post(request.POST, encounter, request.user),
            )
        except ServiceError as exc:
            errors = exc.extra.get("errors") or [exc.message]
            encounter = selectors.encounter_get(request.user, encounter_id)
            return render(
                request,
                "remedio/encounter_verify.html",
                _page_context(request, encounter, posted=request.POST, errors=errors),
                status=exc.status_code,
            )
        messages.success(
            request,
            f"{encounter.patient.pseudonym} · {encounter.capture_date:%Y-%m-%d} verified: "
            f"{outcome['tasks_created']} grading task(s) created.",
        )
        following = selectors.next_awaiting(request.user, after=encounter) if "next" in request.POST else None
        if following is not None:
            return redirect("remedio:verify", encounter_id=following.pk)
        return redirect(f"{reverse('remedio:encounters')}?lab_unit={encounter.lab_unit_id}")
    return render(request, "remedio/encounter_verify.html", _page_context(request, encounter))


@login_required
@require_POST
def encounter_undo(request, encounter_id: int):
    _require_verifier(request.user)
    try:
        encounter = verification.encounter_unverify(user=request.user, encounter_id=encounter_id)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Verification of {encounter.patient.pseudonym} undone: it awaits verification again.")
    return redirect("remedio:verify", encounter_id=encounter_id)


def _restricted_file(name: str, content_type: str, download_name: str) -> FileResponse:
    response = FileResponse(storages["restricted"].open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'inline; filename="{download_name}"'
    return response


def _require_identifiers(user) -> None:
    _require_verifier(user)
    if not access.can(user, "view_identifiers"):
        raise PermissionDenied("Your role does not allow seeing patient identifiers.")


@login_required
def report_pdf(request, encounter_id: int, report_id: int):
    """The report as exported (it carries the patient's identifiers): verifiers only."""
    _require_identifiers(request.user)
    report = selectors.report_get(request.user, encounter_id, report_id)
    return _restricted_file(report.file_name, "application/pdf", f"report-{report.pk}.pdf")


@login_required
def image_original(request, image_id):
    """The unmasked original of a photograph (restricted storage), for checking a mask: verifiers only."""
    _require_identifiers(request.user)
    link = selectors.image_link_get(request.user, image_id)
    if not link.original_name:
        raise Http404("This photograph has no separately kept original.")
    return _restricted_file(link.original_name, "image/jpeg", f"{link.image_id}-original.jpg")
