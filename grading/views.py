"""Grading pages: the queue, the grading page, an image's grades, discrepancies and progress."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import access
from accounts.models import Disease
from common.api import ServiceError
from grading import selectors, services
from grading.forms import DiscrepancyFilterForm
from grading.models import Grade, GradeScheme, GradingSkip, GradingTask, Slot
from uploads.selectors import image_get

PAGE_SIZE = 50


def _require(user, action: str) -> None:
    if not access.can(user, action):
        raise PermissionDenied("Your role does not allow this page.")


@login_required
def queue(request):
    """The grader's start page: one queue per disease, with what is waiting for them."""
    _require(request.user, "grade")
    counts = {row["disease_id"]: row for row in selectors.queue_counts(request.user)}
    schemes = GradeScheme.objects.filter(is_active=True, disease__isnull=False).select_related("disease")
    queues = [
        {
            "disease": scheme.disease,
            "scheme": scheme,
            "available": counts.get(scheme.disease_id, {}).get("available", 0),
            "mine": counts.get(scheme.disease_id, {}).get("mine", 0),
        }
        for scheme in sorted(schemes, key=lambda s: s.disease_id)
    ]
    leases = list(
        GradingTask.objects.filter(
            leased_to=request.user, status=GradingTask.Status.LEASED, lease_expires_at__gt=timezone.now()
        ).select_related("disease")
    )
    return render(
        request,
        "grading/queue.html",
        {
            "queues": queues,
            "leases": leases,
            "skipped": GradingSkip.objects.filter(user=request.user, task__status__in=GradingTask.OPEN).count(),
            "slots": [Slot(s).label for s in selectors.slots_allowed(request.user)],
            "lease_minutes": max(1, settings.GRADING_LEASE_SECONDS // 60),
        },
    )


@login_required
@require_POST
def next_task(request, disease: str):
    """Lease the next task of a queue and open it (the "Start grading" button and "Save & next")."""
    try:
        task = services.task_next(user=request.user, disease=disease)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("grading:queue")
    if task is None:
        messages.info(request, f"Nothing left in the {disease.upper()} queue for you right now.")
        return redirect("grading:queue")
    return redirect("grading:task", task_id=task.pk)


@login_required
@require_POST
def skips_clear(request):
    count = services.skips_clear(user=request.user)
    messages.success(request, f"{count} skipped task{'s' if count != 1 else ''} returned to your queues.")
    return redirect("grading:queue")


def _task_context(request, task: GradingTask) -> dict:
    own = None
    if task.status == GradingTask.Status.DONE and task.completed_by_id == request.user.pk:
        own = Grade.objects.filter(task=task, is_current=True, grader=request.user).select_related("option").first()
    return {
        "task": task,
        "image": task.image,
        "options": selectors.options_offered(task.scheme),
        "other_grades": selectors.task_context_grades(task, request.user)["grades"],
        "companions": selectors.image_companions(task.image, request.user),
        "own": own,
        "remarks": own.remarks if own else "",
        "lease_seconds": settings.GRADING_LEASE_SECONDS,
        "holds_lease": task.status == GradingTask.Status.LEASED and task.leased_to_id == request.user.pk,
        "can_revise": own is not None and selectors.revision_allowed(task, request.user),
    }


@login_required
@require_http_methods(["GET", "POST"])
def task_page(request, task_id: int):
    """The grading page: the image in the viewer, the scheme's options as large buttons, remarks, Save & next, Skip.

    Blind: nothing of other graders is shown unless the scheme allows it (arbitration shows both slot grades)."""
    _require(request.user, "grade")
    task = selectors.task_get(request.user, task_id)
    mine = task.leased_to_id == request.user.pk or task.completed_by_id == request.user.pk
    if not mine:
        messages.warning(request, "That task is not yours (any more): here is your queue.")
        return redirect("grading:queue")
    if request.method == "GET":
        return render(request, "grading/task.html", _task_context(request, task))

    disease_code = task.disease.code
    try:
        if request.POST.get("action") == "skip":
            services.task_skip(user=request.user, task_id=task.pk)
            messages.info(request, "Skipped: the task went back to the queue for other graders.")
        else:
            result = services.grade_submit(
                user=request.user,
                task_id=task.pk,
                option=request.POST.get("option"),
                remarks=request.POST.get("remarks", ""),
                seconds_spent=request.POST.get("seconds_spent") or None,
            )
            label = result.grade.option.label
            messages.success(
                request, f"{'Revised' if result.revised else 'Saved'}: {result.grade.option.code} · {label}."
            )
            if request.POST.get("action") == "save":
                return redirect("grading:task", task_id=task.pk)
    except ServiceError as exc:
        task = selectors.task_get(request.user, task_id)
        context = _task_context(request, task)
        context.update(error=exc.message, remarks=request.POST.get("remarks", ""))
        return render(request, "grading/task.html", context, status=exc.status_code)
    return next_task(request, disease_code)


@login_required
def image_grades_page(request, image_id):
    """All grades of an image with history and how consensus was reached (the image page's grades panel)."""
    image = image_get(request.user, image_id)
    data = selectors.image_grades(image, request.user)
    tasks = selectors.image_tasks(image)
    return render(
        request,
        "grading/image_grades.html",
        {"image": image, "grading": {**data, "tasks": tasks, "image": image}},
    )


@login_required
def discrepancies(request):
    """Images whose graders disagreed (or whose AI grade differs from the consensus), with the grades side by side."""
    _require(request.user, "view_quality")
    form = DiscrepancyFilterForm(request.GET or None, user=request.user)
    filters = form.filters()
    if filters.kind == "ai":
        rows_qs = selectors.discrepancies_ai(request.user, filters)
    else:
        rows_qs = selectors.discrepancies_graders(request.user, filters)
    if form.is_bound and not form.is_valid():
        rows_qs = rows_qs.none()  # the errors are shown with the filters; never a wider list than asked for
    page = Paginator(rows_qs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    side = selectors.grades_for_images([(r.image_id, r.disease_id, r.scheme_id) for r in rows])
    items = []
    for r in rows:
        grades = side.get((r.image_id, r.disease_id), {})
        items.append(
            {
                "row": r,
                "grades": grades,
                "primary": grades.get("primary") or grades.get("resident"),
                "secondary": grades.get("secondary") or grades.get("resident2"),
            }
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "grading/discrepancies.html",
        {"form": form, "kind": filters.kind, "page": page, "items": items, "query": query.urlencode()},
    )


@login_required
def progress(request):
    """Counts per queue (pending, in progress, done), per grader, and the grader's own history."""
    _require(request.user, "view_images")
    user = request.user
    history = None
    if access.can(user, "grade"):
        history = Paginator(selectors.grader_history(user), PAGE_SIZE).get_page(request.GET.get("page"))
    graders = selectors.progress_graders(user)
    if not (access.can(user, "view_quality") or access.is_admin(user)):
        graders = [row for row in graders if row["user_id"] == user.pk]
    return render(
        request,
        "grading/progress.html",
        {
            "queues": selectors.progress_queues(user),
            "graders": graders,
            "history": history,
            "diseases": Disease.objects.all(),
            "queue_url": reverse("grading:queue"),
        },
    )
