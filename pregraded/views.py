"""Pages: pre-graded upload, grade import (form, mapping step, progress and summary), AI model registry."""

import csv
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import access
from common.api import ServiceError
from common.http import client_ip, user_agent
from pregraded import selectors, spreadsheets, workbooks
from pregraded.models import GraderType, ValueMapping
from pregraded.services import imports, registry, verification
from pregraded.services import uploads as pregraded_uploads
from uploads import selectors as upload_selectors
from uploads import views as upload_views

MSG_NOT_ALLOWED = "Your role does not allow importing grades: only data managers and administrators import grades."


@login_required
@require_http_methods(["GET", "POST"])
def upload(request):
    """The direct upload form plus a dataset label; the images are stored as pre-graded."""
    return upload_views.upload_page(
        request,
        kind="pregraded_upload",
        template="pregraded/upload.html",
        action="upload_pregraded",
        extra_params=lambda req: pregraded_uploads.upload_params(dataset_label=req.POST.get("dataset_label")),
        title="Pre-Graded Upload",
    )


def _not_allowed(request):
    return render(request, "pregraded/not_allowed.html", {"message": MSG_NOT_ALLOWED}, status=403)


def _form_context(user, form=None) -> dict:
    context = upload_selectors.upload_form_context(user)
    return {
        **context,
        "grader_types": GraderType.choices,
        "graders": selectors.grader_choices(user),
        "ai_models": list(selectors.ai_models()),
        "recent": list(selectors.recent_imports(user)),
        "form": form or {},
        "grader_type_rows": [(v, label, spreadsheets.describe_expected(v)) for v, label in GraderType.choices],
    }


@login_required
@require_http_methods(["GET", "POST"])
def grades(request):
    """The grade import form and the latest imports of the user's lab units."""
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    if request.method == "POST":
        try:
            grade_import = imports.grade_import_create(
                user=request.user,
                data=request.POST,
                uploaded=request.FILES.get("file"),
                client_ip=client_ip(request),
                user_agent=user_agent(request),
            )
        except ServiceError as exc:
            context = {**_form_context(request.user, request.POST), "error": exc.message}
            return render(request, "pregraded/grades.html", context, status=exc.status_code)
        return redirect("pregraded:import", import_id=grade_import.pk)
    return render(request, "pregraded/grades.html", _form_context(request.user))


@login_required
@require_GET
def grade_import_page(request, import_id):
    """One import: its mapping step, its progress, or its summary."""
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    grade_import = selectors.grade_import_get(request.user, import_id)
    rows = selectors.value_rows(grade_import)
    failures = (grade_import.summary or {}).get("failures", [])
    return render(
        request,
        "pregraded/import.html",
        {
            "imp": grade_import,
            "rows": rows,
            "unmapped": [r for r in rows if r.needs_mapping],
            "mapped": [r for r in rows if not r.needs_mapping],
            "options": selectors.scheme_options(grade_import.scheme),
            "failures": failures[:FAILURES_SHOWN],
            "failures_hidden": max(0, len(failures) - FAILURES_SHOWN),
        },
    )


FAILURES_SHOWN = 500


def _mapping_from_form(post, rows) -> dict:
    """The mapping page posts ``map-<index>`` = ``option:<code>`` | ``no_grade`` | ``skip`` for each value row."""
    mapping = {}
    for row in rows:
        choice = (post.get(f"map-{row.index}") or "").strip()
        if not choice:
            continue
        if choice.startswith("option:"):
            mapping[row.key] = {"action": ValueMapping.Action.OPTION, "option": choice.split(":", 1)[1]}
        elif choice in (ValueMapping.Action.NO_GRADE, ValueMapping.Action.SKIP):
            mapping[row.key] = {"action": choice}
    return mapping


@login_required
@require_POST
def grade_import_mapping(request, import_id):
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    grade_import = selectors.grade_import_get(request.user, import_id)
    rows = selectors.value_rows(grade_import)
    try:
        imports.grade_import_map(
            user=request.user,
            import_id=grade_import.pk,
            mapping=_mapping_from_form(request.POST, rows),
            client_ip=client_ip(request),
            user_agent=user_agent(request),
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("pregraded:import", import_id=grade_import.pk)


@login_required
@require_POST
def grade_import_cancel(request, import_id):
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    try:
        imports.grade_import_cancel(user=request.user, import_id=import_id)
        messages.info(request, "The import was cancelled; nothing was imported.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("pregraded:grades")


def _csv_safe(value) -> str:
    """Cells a spreadsheet program would run as a formula are written as text."""
    text = str(value if value is not None else "")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@login_required
@require_GET
def grade_import_failures(request, import_id):
    """Every failed row of a finished import as CSV (row, image name, reason)."""
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    grade_import = selectors.grade_import_get(request.user, import_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "image_name", "reason"])
    for failure in (grade_import.summary or {}).get("failures", []):
        writer.writerow([failure["row"], _csv_safe(failure["image_name"]), _csv_safe(failure["reason"])])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="grade-import-{grade_import.pk}-failed-rows.csv"'
    return response


@login_required
@require_GET
def grade_template(request, grader_type):
    """The template workbook of a grader type: the columns to fill, and the values each disease's scheme accepts."""
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    if grader_type not in spreadsheets.GRADER_TYPES:
        raise Http404("Unknown grader type.")
    response = HttpResponse(workbooks.template_workbook(grader_type), content_type=workbooks.XLSX_MIME)
    response["Content-Disposition"] = f'attachment; filename="{grader_type}-grades-template.xlsx"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def ai_models(request):
    """The AI model registry: every model version, and a form to register one."""
    if not access.can(request.user, "import_grades"):
        return _not_allowed(request)
    error, form, status = None, {}, 200
    if request.method == "POST":
        try:
            model = registry.ai_model_create(
                name=request.POST.get("name"),
                version=request.POST.get("version"),
                description=request.POST.get("description") or "",
            )
        except ServiceError as exc:
            error, form, status = exc.message, request.POST, exc.status_code
        else:
            messages.success(request, f"Registered {model.name} {model.version}.")
            return redirect("pregraded:ai-models")
    return render(
        request,
        "pregraded/ai_models.html",
        {"models": selectors.ai_models_with_counts(), "error": error, "form": form},
        status=status,
    )


@login_required
@require_POST
def verify(request, image_id):
    """A data manager confirms a pre-graded image and its imported grades (from the image page)."""
    image = upload_selectors.image_get(request.user, image_id)
    if not image.is_pregraded:
        raise Http404("Not a pre-graded image.")
    try:
        verification.verification_confirm(user=request.user, image=image)
        messages.success(request, "Pre-graded image verified.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("uploads:image", args=[image.pk])
    return redirect(target)
