import json
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from accounts import access
from common.api import ServiceError
from common.http import client_ip, user_agent
from uploads import actions, exports, hooks, pagination, panels, selectors, services, serving
from uploads import filters as filter_rules
from uploads.audit import Origin
from uploads.filters import FilterChoices
from uploads.models import GradingStatus, Image


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def upload_page(request, *, kind: str, template: str, action: str, extra_params=None, title: str):
    """The direct-upload form and its submission (also used by the pre-graded upload page)."""
    context = {
        **selectors.upload_form_context(request.user),
        "title": title,
        "limits": {
            "max_mb": settings.DIRECT_UPLOAD_MAX_FILE_SIZE_MB,
            "max_files": settings.DIRECT_UPLOAD_MAX_FILES,
            "quota": request.user.effective_upload_quota,
            "used": request.user.upload_count,
        },
        "allowed": access.can(request.user, action),
        "form": request.POST if request.method == "POST" else {},
    }
    if request.method != "POST":
        return render(request, template, context)
    try:
        target = services.resolve_target(user=request.user, data=request.POST, action=action)
        try:
            client_rejected = json.loads(request.POST.get("client_rejected") or "[]")
        except ValueError:
            client_rejected = []
        job = services.image_upload_create(
            user=request.user,
            target=target,
            files=request.FILES.getlist("files"),
            client_ip=client_ip(request),
            user_agent=user_agent(request),
            kind=kind,
            extra_params=extra_params(request) if extra_params else None,
            client_rejected=client_rejected if isinstance(client_rejected, list) else [],
        )
    except ServiceError as exc:
        if _wants_json(request):
            return JsonResponse({"detail": exc.message}, status=exc.status_code)
        return render(request, template, {**context, "error": exc.message}, status=exc.status_code)
    url = reverse("jobs:processing", args=[job.pk])
    if _wants_json(request):
        return JsonResponse({"job_id": str(job.pk), "status": job.status, "processing_url": url}, status=202)
    return redirect(url)


@login_required
@require_http_methods(["GET", "POST"])
def direct_upload(request):
    return upload_page(
        request,
        kind="direct_upload",
        template="uploads/direct_upload.html",
        action="upload_images",
        title="Direct Upload",
    )


def _image_for_file(request, image_id):
    try:
        return selectors.images_visible_to(request.user).select_related("edit").get(pk=image_id)
    except (Image.DoesNotExist, ValueError, ValidationError) as exc:
        raise Http404("Image not found.") from exc


@login_required
def image_file(request, image_id, variant: str = "file"):
    """A stored image (or its thumbnail) after checking the user may see it: streamed from local storage, or a
    redirect to a short-lived signed URL on S3."""
    image = _image_for_file(request, image_id)
    return serving.file_response(image, "original" if variant == "file" else variant)


# --- Dashboard, image page, editing, bulk actions, export ---------------------------------------------------------

PER_PAGE_CHOICES = (24, 48)
DEFAULT_PER_PAGE = 48
VIEWS = ("grid", "table")


def _message_page(request, status: int, title: str, message: str):
    return render(request, "uploads/message.html", {"title": title, "message": message}, status=status)


def _forbidden(request, message: str = "Your role does not allow viewing images."):
    return _message_page(request, 403, "Not allowed", message)


def _dashboard_back(request) -> str:
    """A safe link back to the dashboard view the user came from (filters kept)."""
    back = request.GET.get("back") or request.POST.get("next") or ""
    dashboard_url = reverse("uploads:dashboard")
    if back.startswith(dashboard_url) and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return back
    return dashboard_url


@login_required
@require_http_methods(["GET"])
def dashboard(request):
    user = request.user
    if not access.can(user, "view_images"):
        return _forbidden(request)
    choices = FilterChoices(user)
    errors: list[str] = []
    try:
        filters = filter_rules.parse(request.GET, choices)
    except filter_rules.FilterError as exc:
        errors += exc.errors
        filters = None
    view = request.GET.get("view") if request.GET.get("view") in VIEWS else "grid"
    per_page_raw = request.GET.get("per_page") or str(DEFAULT_PER_PAGE)
    per_page = int(per_page_raw) if per_page_raw.isdigit() and int(per_page_raw) in PER_PAGE_CHOICES else None
    if per_page is None:
        errors.append(
            f"Images per page must be one of {', '.join(map(str, PER_PAGE_CHOICES))}, got {per_page_raw[:20]!r}."
        )
        per_page = DEFAULT_PER_PAGE
    page = None
    count = 0
    if filters is not None and not errors:
        try:
            page = selectors.images_page(
                user,
                filters,
                per_page=per_page,
                after=request.GET.get("after"),
                before=request.GET.get("before"),
                choices=choices,
            )
        except pagination.InvalidCursor as exc:
            errors.append(str(exc))
        else:
            count = selectors.images_count(user, filters)
    keep = {"view": view if view != "grid" else None, "per_page": per_page if per_page != DEFAULT_PER_PAGE else None}
    base = filters.querystring(**keep) if filters is not None else ""

    def link(**extra) -> str:
        query = "&".join(part for part in (base, urlencode({k: v for k, v in extra.items() if v})) if part)
        return f"?{query}" if query else "?"

    nav = {}
    if page is not None:
        nav = {
            "first": link() if page.has_prev else None,
            "prev": (link(before=page.prev_token) if page.prev_token else link()) if page.has_prev else None,
            "next": link(after=page.next_token) if page.next_token else None,
        }
    this_view = request.get_full_path()
    export_query = filters.querystring() if filters is not None else ""
    context = {
        "choices": choices,
        "filters": filters,
        "raw": request.GET,
        "errors": errors,
        "page": page,
        "count": count,
        "nav": nav,
        "view": view,
        "per_page": per_page,
        "per_page_choices": PER_PAGE_CHOICES,
        "sorts": filter_rules.SORTS,
        "grading_statuses": GradingStatus.choices,
        "kpis": selectors.image_kpis(user, choices),
        "grid_url": "?" + (filters.querystring(per_page=keep["per_page"]) if filters else ""),
        "table_url": "?" + (filters.querystring(view="table", per_page=keep["per_page"]) if filters else "view=table"),
        "export_csv": f"{reverse('uploads:export')}?{export_query}&format=csv".replace("?&", "?"),
        "export_xlsx": f"{reverse('uploads:export')}?{export_query}&format=xlsx".replace("?&", "?"),
        "this_view": this_view,
        "back": quote(this_view, safe=""),
        "max_selection": filter_rules.MAX_SELECTION,
        "export_includes": [(key, provider.label) for key, provider in hooks.export_providers().items()],
        "can_manage": access.can(user, "manage_images"),
    }
    return render(request, "uploads/dashboard.html", context, status=400 if errors else 200)


def _image_context(request, image, **extra) -> dict:
    user = request.user
    rendered_panels = []
    for panel in panels.panels_for(image, user):
        html = render_to_string(panel["template"], {**(panel.get("context") or {}), "image": image}, request=request)
        rendered_panels.append({"title": panel.get("title", ""), "html": html})
    choices = FilterChoices(user)
    edit = serving._edit(image)
    return {
        "image": image,
        "edit": edit,
        "panels": rendered_panels,
        "history": selectors.image_history(image),
        "choices": choices,
        "can_manage": access.can(user, "manage_images"),
        "show_origin": access.can(user, "view_audit"),
        "edit_refusal": actions.edit_refusal(image),
        "back": _dashboard_back(request),
        "back_param": quote(_dashboard_back(request), safe=""),
        "original_url": reverse("image-file", args=[image.pk]),
        "edited_url": reverse("uploads:image-edited", args=[image.pk]) if image.edited_file else "",
        **extra,
    }


def _image_or_gone(request, image_id):
    """(image, None) or (None, response) for a missing or deleted image."""
    try:
        return selectors.image_for_page(request.user, image_id), None
    except selectors.ImageGone as gone:
        return None, _message_page(request, 410, "Image deleted", gone.message)


@login_required
@require_http_methods(["GET"])
def image_page(request, image_id):
    if not access.can(request.user, "view_images"):
        return _forbidden(request)
    image, gone = _image_or_gone(request, image_id)
    if gone:
        return gone
    return render(request, "uploads/image.html", _image_context(request, image))


@login_required
@require_http_methods(["POST"])
def image_metadata(request, image_id):
    image, gone = _image_or_gone(request, image_id)
    if gone:
        return gone
    try:
        result = actions.images_metadata_update(
            user=request.user, image_ids=[image.pk], data=request.POST, origin=Origin.of(request)
        )
    except ServiceError as exc:
        context = _image_context(request, image, metadata_error=exc.message, metadata_open=True)
        return render(request, "uploads/image.html", context, status=exc.status_code)
    if result.updated:
        changes = result.changes[image.pk]
        messages.success(
            request,
            "Metadata saved: "
            + "; ".join(f"{actions.FIELD_LABELS[k]} {v['from_label']} → {v['to_label']}" for k, v in changes.items()),
        )
    else:
        messages.info(request, "Nothing changed: the values were already the same.")
    return redirect(f"{reverse('uploads:image', args=[image.pk])}?back={quote(_dashboard_back(request), safe='')}")


@login_required
@require_http_methods(["GET", "POST"])
def image_edit(request, image_id):
    user = request.user
    if not access.can(user, "manage_images"):
        return _forbidden(request, actions.MSG_NOT_ALLOWED)
    image, gone = _image_or_gone(request, image_id)
    if gone:
        return gone
    refusal = actions.edit_refusal(image)
    edit = serving._edit(image)
    context = {
        "image": image,
        "edit": edit,
        "refusal": refusal,
        "operations": json.dumps(edit.operations if edit else []),
        "original_url": reverse("image-file", args=[image.pk]),
        "back": _dashboard_back(request),
        "back_param": quote(_dashboard_back(request), safe=""),
    }
    if request.method == "GET":
        return render(request, "uploads/editor.html", context, status=409 if refusal else 200)
    raw = request.POST.get("operations") or ""
    try:
        operations = json.loads(raw)
    except ValueError:
        return render(
            request,
            "uploads/editor.html",
            {
                **context,
                "error": "The edit could not be read (not a list of operations). Reload the page and try again.",
            },
            status=400,
        )
    try:
        actions.image_edit_save(user=user, image_id=image.pk, operations=operations, origin=Origin.of(request))
    except ServiceError as exc:
        return render(
            request,
            "uploads/editor.html",
            {**context, "error": exc.message, "operations": json.dumps(operations)},
            status=exc.status_code,
        )
    messages.success(
        request, 'Edited version saved. The original is kept unchanged; "Restore original" removes the edit.'
    )
    return redirect(f"{reverse('uploads:image', args=[image.pk])}?back={context['back_param']}")


@login_required
@require_http_methods(["POST"])
def image_restore(request, image_id):
    if not access.can(request.user, "manage_images"):
        return _forbidden(request, actions.MSG_NOT_ALLOWED)
    image, gone = _image_or_gone(request, image_id)
    if gone:
        return gone
    try:
        actions.image_edit_restore(user=request.user, image_id=image.pk, origin=Origin.of(request))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Original restored: the edited version was removed.")
    return redirect(f"{reverse('uploads:image', args=[image.pk])}?back={quote(_dashboard_back(request), safe='')}")


@login_required
@require_http_methods(["POST"])
def images_bulk(request):
    """Bulk actions from the dashboard (and deletion from the image page): metadata changes apply at once; deletion
    first shows a confirmation naming the count and the files, then deletes on the confirmed second post."""
    user = request.user
    if not access.can(user, "manage_images"):
        return _forbidden(request, actions.MSG_NOT_ALLOWED)
    back = _dashboard_back(request)
    ids = request.POST.getlist("ids")
    action = request.POST.get("action")
    origin = Origin.of(request)
    if action == "update":
        try:
            result = actions.images_metadata_update(user=user, image_ids=ids, data=request.POST, origin=origin)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return redirect(back)
        n = len(result.updated)
        unchanged = f" ({len(result.unchanged)} already had these values)" if result.unchanged else ""
        messages.success(request, f"Metadata changed on {n} image{'s' if n != 1 else ''}{unchanged}.")
        return redirect(back)
    if action != "delete":
        messages.error(request, 'Unknown bulk action. Choose "Edit metadata" or "Delete".')
        return redirect(back)
    context = {"back": back, "ids": ids, "is_admin": access.is_admin(user)}
    try:
        preview = actions.images_delete_preview(user=user, image_ids=ids)
    except ServiceError as exc:
        return render(request, "uploads/delete_confirm.html", {**context, "error": exc.message}, status=exc.status_code)
    context["preview"] = preview
    if "confirm_count" not in request.POST:
        return render(request, "uploads/delete_confirm.html", context)
    try:
        result = actions.images_delete(
            user=user,
            image_ids=ids,
            confirm_count=request.POST.get("confirm_count"),
            confirm_graded=request.POST.get("confirm_graded") == "yes",
            origin=origin,
        )
    except ServiceError as exc:
        return render(request, "uploads/delete_confirm.html", {**context, "error": exc.message}, status=exc.status_code)
    n, files = result.deleted, len(result.files)
    messages.success(
        request, f"Deleted {n} image{'s' if n != 1 else ''} and {'its' if n == 1 else 'their'} {files} stored files."
    )
    return redirect(back)


@login_required
@require_http_methods(["GET"])
def images_export(request):
    user = request.user
    if not access.can(user, "view_images"):
        return _forbidden(request)
    try:
        filters = filter_rules.parse(request.GET, FilterChoices(user))
        fmt, include = exports.parse_request(request.GET)
    except filter_rules.FilterError as exc:
        return _message_page(request, 400, "Export refused", " ".join(exc.errors))
    except exports.ExportError as exc:
        return _message_page(request, 400, "Export refused", str(exc))
    export = exports.ExportRequest(format=fmt, filters=filters, include=include)
    exports.record(user=user, export=export, origin=Origin.of(request))
    return exports.response(user=user, request=export, http_request=request)


@login_required
def image_variant(request, image_id, variant: str):
    """Permission-checked file of an image: the edited version or a thumbnail (see ``image_file``)."""
    image = _image_for_file(request, image_id)
    return serving.file_response(image, variant)
