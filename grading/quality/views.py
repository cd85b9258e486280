"""Quality pages: agreement between graders, performance against the consensus, grader monitoring; exports and the
PDF report. Thin: parse the selection, call one cached selector, prepare charts, render."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts import access
from accounts.models import Disease
from grading.models import GradeScheme
from grading.quality import charts, exports, present, selectors
from grading.quality.selection import (
    AGREEMENT,
    CI_CHOICES,
    MONITORING,
    PERFORMANCE,
    UNGRADABLE_CHOICES,
    UNITS,
    SelectionError,
    parse,
)
from uploads.models import Image

TABS = [
    (AGREEMENT, "Agreement", "grading:quality:agreement"),
    (PERFORMANCE, "Performance", "grading:quality:performance"),
    (MONITORING, "Grader monitoring", "grading:quality:monitoring"),
]


def _require(user) -> None:
    if not access.can(user, "view_quality"):
        raise PermissionDenied("Quality metrics are for data managers and ophthalmologists.")


def _form_context(request, kind: str, sel) -> dict:
    """Choices of the filter bar (a constant number of queries)."""
    user = request.user
    params = request.GET
    diseases = list(Disease.objects.all())
    disease = sel.disease if sel else None
    schemes = list(GradeScheme.objects.filter(disease=disease).order_by("-is_active", "name")) if disease else []
    datasets = (
        access.scope(Image.objects.exclude(dataset_label=""), user)
        .order_by("dataset_label")
        .values_list("dataset_label", flat=True)
        .distinct()[:200]
    )
    chosen_raters = [r.token for r in sel.raters] if sel else params.getlist("rater")
    return {
        "kind": kind,
        "tabs": TABS,
        "diseases": diseases,
        "schemes": schemes,
        "hospitals": list(access.hospitals(user)),
        "lab_units": list(access.lab_units(user)),
        "datasets": list(datasets),
        "raters": selectors.rater_choices(user),
        "chosen_raters": chosen_raters,
        "units": UNITS,
        "ungradable_choices": UNGRADABLE_CHOICES[kind],
        "ci_choices": CI_CHOICES,
        "sel": sel,
        "params": params,
        "options": sel.options if sel else [],
    }


def _links(sel, kind: str) -> dict:
    query = urlencode(sel.query_params(), doseq=True)
    return {
        "query": query,
        "csv": f"{reverse('grading:quality:export', args=[kind, 'csv'])}?{query}",
        "xlsx": f"{reverse('grading:quality:export', args=[kind, 'xlsx'])}?{query}",
        "pdf": f"{reverse('grading:quality:report')}?{query}",
        "api": f"{reverse(f'api:quality-{kind}')}?{query}",
    }


def _parse_or_error(request, kind: str, template: str, **kwargs):
    try:
        return parse(request.user, request.GET, kind=kind, **kwargs), None
    except SelectionError as exc:
        context = _form_context(request, kind, None)
        context["errors"] = exc.errors
        return None, render(request, template, context, status=400)


@login_required
def index(request):
    _require(request.user)
    return redirect("grading:quality:agreement")


@login_required
@require_GET
def agreement_page(request):
    _require(request.user)
    sel, error = _parse_or_error(request, AGREEMENT, "quality/agreement.html")
    if error:
        return error
    data, was_cached = selectors.agreement_cached(sel)
    pairs = data["pairs"]
    chosen = None
    if pairs:
        try:
            chosen = max(0, min(len(pairs) - 1, int(request.GET.get("pair", ""))))
        except ValueError:
            chosen = max(range(len(pairs)), key=lambda i: pairs[i]["n"])
    rows = [
        {
            "pair": pair,
            "show": present.pair_display(pair),
            "selected": i == chosen,
            "link": urlencode({**sel.query_params(), "pair": i}, doseq=True),
        }
        for i, pair in enumerate(pairs)
    ]
    context = _form_context(request, AGREEMENT, sel)
    context.update(
        {
            "data": data,
            "rows": rows,
            "fleiss": present.est_num(data["fleiss_kappa"]),
            "links": _links(sel, AGREEMENT),
            "was_cached": was_cached,
        }
    )
    if chosen is not None:
        pair = pairs[chosen]
        labels, counts = _visible_matrix(data["categories"], pair["confusion"], sel.ungradable == "category")
        context["selected"] = rows[chosen]
        context["heatmap"] = charts.heatmap(
            counts,
            labels,
            labels,
            row_title=pair["a_label"],
            col_title=pair["b_label"],
            label=f"Confusion matrix: {pair['a_label']} (rows) against {pair['b_label']} (columns)",
        ).svg()
        context["timeline"] = charts.over_time(
            pair["over_time"], label=f"Agreement over time: {pair['a_label']} and {pair['b_label']}"
        ).svg()
    return render(request, "quality/agreement.html", context)


def _visible_matrix(categories: list[dict], counts: list[list[int]], keep_ungradable: bool):
    """Rows and columns worth showing: every gradable option and, when counted, ungradable; retired or empty
    ungradable categories are left out."""
    keep = []
    for i, cat in enumerate(categories):
        used = any(counts[i]) or any(row[i] for row in counts)
        if cat["ungradable"] and not (keep_ungradable or used):
            continue
        keep.append(i)
    labels = [categories[i]["code"] for i in keep]
    return labels, [[counts[i][j] for j in keep] for i in keep]


@login_required
@require_GET
def performance_page(request):
    _require(request.user)
    sel, error = _parse_or_error(request, PERFORMANCE, "quality/performance.html")
    if error:
        return error
    data, was_cached = selectors.performance_overview_cached(sel)
    context = _form_context(request, PERFORMANCE, sel)
    rows = [
        {
            "row": row,
            "sensitivity": present.est_pct(row["sensitivity"]),
            "specificity": present.est_pct(row["specificity"]),
            "ppv": present.est_pct(row["ppv"]),
            "npv": present.est_pct(row["npv"]),
            "auc": present.est_num(row["auc"], 3),
            "gradable": present.est_pct(row["gradable"]["rater"]),
            "link": urlencode({**sel.query_params(), "rater": row["rater"]["token"]}, doseq=True),
        }
        for row in data["raters"]
    ]
    context.update(
        {
            "data": data,
            "rows": rows,
            "links": _links(sel, PERFORMANCE),
            "was_cached": was_cached,
            "forest": charts.forest(data["raters"], label="Sensitivity and specificity of each rater").svg()
            if data["raters"]
            else None,
        }
    )
    detail = data["detail"]
    if detail:
        labels, counts = _visible_matrix(
            data["categories"], detail["confusion"]["counts"], sel.ungradable == "referable"
        )
        context["detail"] = detail
        context["show"] = {
            key: present.est_pct(detail[key])
            for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "prevalence")
        }
        context["show"]["auc"] = present.est_num(detail["auc"], 3)
        context["show"]["gradable"] = present.est_pct(detail["gradable"]["rater"])
        context["show"]["gradable_reference"] = present.est_pct(detail["gradable"]["reference"])
        context["heatmap"] = charts.heatmap(
            counts,
            labels,
            labels,
            row_title="Consensus",
            col_title=detail["rater"]["label"],
            label=f"Confusion matrix of {detail['rater']['label']} against the consensus",
        ).svg()
        context["roc"] = charts.roc(detail, label=f"ROC curve of {detail['rater']['label']}").svg()
        context["thresholds"] = detail.get("thresholds") or []
    return render(request, "quality/performance.html", context)


@login_required
@require_GET
def monitoring_page(request):
    _require(request.user)
    sel, error = _parse_or_error(request, MONITORING, "quality/monitoring.html")
    if error:
        return error
    data, was_cached = selectors.monitoring_cached(sel)
    limits = (data["thresholds"]["sensitivity"], data["thresholds"]["specificity"])
    rows = [
        {
            "g": g,
            "sensitivity": present.est_pct(g["sensitivity"]),
            "specificity": present.est_pct(g["specificity"]),
            "window_sensitivity": present.est_pct(g["window"]["sensitivity"]),
            "window_specificity": present.est_pct(g["window"]["specificity"]),
            "spark": charts.sparkline(
                g["series"], limits=limits, label=f"Running sensitivity and specificity of {g['username']}"
            ).svg(),
        }
        for g in data["graders"]
    ]
    context = _form_context(request, MONITORING, sel)
    context.update(
        {
            "data": data,
            "rows": rows,
            "links": _links(sel, MONITORING),
            "was_cached": was_cached,
            "forest": charts.forest(
                [{**g, "rater": {"label": g["username"]}} for g in data["graders"]],
                label="Running sensitivity and specificity of each grader",
                thresholds=limits,
            ).svg()
            if data["graders"]
            else None,
        }
    )
    return render(request, "quality/monitoring.html", context)


@login_required
@require_GET
def export(request, kind: str, fmt: str):
    """The figures of a page as CSV or XLSX (aggregates only: no image, patient or file identifiers)."""
    _require(request.user)
    if kind not in (AGREEMENT, PERFORMANCE, MONITORING) or fmt not in exports.FORMATS:
        raise Http404("Not found.")
    template = f"quality/{kind}.html"
    sel, error = _parse_or_error(request, kind, template)
    if error:
        return error
    if kind == AGREEMENT:
        data = selectors.agreement_cached(sel)[0]
    elif kind == PERFORMANCE:
        data = selectors.performance_overview_cached(sel)[0]
    else:
        data = selectors.monitoring_cached(sel)[0]
    return exports.response(kind, fmt, data)


@login_required
@require_GET
def report(request):
    """A one-page PDF report of a selection: agreement, performance against the consensus, their charts, methods."""
    _require(request.user)
    params = request.GET.copy()
    agreement_params = params.copy()
    performance_params = params.copy()
    ungradable = params.get("ungradable", "")
    if ungradable == "referable":
        agreement_params["ungradable"] = "excluded"
    if ungradable == "category":
        performance_params["ungradable"] = "excluded"
    agreement_params.pop("unit", None)
    try:
        sel_a = parse(request.user, agreement_params, kind=AGREEMENT)
        sel_p = parse(request.user, performance_params, kind=PERFORMANCE)
    except SelectionError as exc:
        context = _form_context(request, AGREEMENT, None)
        context["errors"] = exc.errors
        return render(request, "quality/agreement.html", context, status=400)
    agreement = selectors.agreement_cached(sel_a)[0]
    performance = selectors.performance_overview_cached(sel_p)[0]
    return exports.pdf_response(agreement, performance)
