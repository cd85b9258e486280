"""Quality API: the figures of the quality pages for scripts. Thin: parse the selection, call one cached selector.

Every figure is an estimate ``{"value", "low", "high", "reason"}`` (95% interval; ``value`` null with a ``reason``
when undefined) except in ``pairs``, where each statistic's value sits beside a ``ci`` object, as documented.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from common.api import Forbidden
from grading.quality import selectors
from grading.quality.selection import AGREEMENT, MONITORING, PERFORMANCE, RATER_HELP, SelectionError, parse

SELECTION_PARAMETERS = [
    OpenApiParameter("disease", str, description="Disease code or id (default: the first with an active scheme)"),
    OpenApiParameter("scheme", str, description="Grade scheme code (default: the disease's active scheme)"),
    OpenApiParameter("hospital", str, description="Hospital id or code (inside your lab units)"),
    OpenApiParameter("lab_unit", str, description="Lab unit id or code (inside your lab units)"),
    OpenApiParameter("dataset", str, description="Dataset label of the images"),
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="Grades given on or after this day"),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="Grades given on or before this day"),
    OpenApiParameter(
        "threshold",
        str,
        description="An option code of the scheme: positive from that grade up (default: the scheme's referable "
        "definition)",
    ),
    OpenApiParameter("ci", str, enum=["analytic", "bootstrap"], description="Interval method for kappa"),
]
ERRORS = {
    400: OpenApiResponse(description="A bad parameter: `detail` and `errors` say what is wrong and what is allowed"),
    403: OpenApiResponse(description="Quality metrics are for data managers, ophthalmologists and admins"),
    404: OpenApiResponse(description="A hospital or lab unit outside your lab units"),
}


class _QualityApi(APIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not access.can(request.user, "view_quality"):
            raise Forbidden("Quality metrics are for data managers, ophthalmologists and admins.")

    @staticmethod
    def respond(result: tuple[dict, bool]) -> Response:
        data, was_cached = result
        response = Response(data)
        response["X-Quality-Cache"] = "hit" if was_cached else "miss"
        response["Cache-Control"] = "private, no-store"
        return response


class AgreementApi(_QualityApi):
    @extend_schema(
        operation_id="quality_agreement",
        summary="Agreement between raters on the same images",
        description="For each pair of raters: images both graded (`n`), % exact, % within one step, Cohen's kappa, "
        "linear and quadratic weighted kappa, each with its 95% interval in `ci`; Fleiss' kappa over the images "
        "every rater graded when there are more than two raters. Default raters: the human grader types present.",
        parameters=[
            *SELECTION_PARAMETERS,
            OpenApiParameter("rater", str, many=True, description=f"Raters to compare: {RATER_HELP}"),
            OpenApiParameter(
                "ungradable",
                str,
                enum=["excluded", "category"],
                description="Ungradable grades left out (default) or counted as a category of their own",
            ),
        ],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request):
        sel = parse(request.user, request.query_params, kind=AGREEMENT)
        return self.respond(selectors.agreement_cached(sel))


class PerformanceApi(_QualityApi):
    @extend_schema(
        operation_id="quality_performance",
        summary="One rater against the consensus reference",
        description="Confusion counts, sensitivity, specificity, PPV and NPV with Wilson 95% intervals for the "
        "referable definition (or `threshold`); for raters with probabilities the AUC with its DeLong interval, "
        "the ROC curve `[[fpr, tpr, threshold], …]` (the first point's threshold is null: above every score) and "
        "a threshold explorer. Unit of analysis and the handling of ungradable images are selectable and stated.",
        parameters=[
            *SELECTION_PARAMETERS,
            OpenApiParameter("rater", str, required=True, description=f"The rater: {RATER_HELP}"),
            OpenApiParameter("unit", str, enum=["image", "eye", "patient"], description="Unit of analysis"),
            OpenApiParameter(
                "ungradable",
                str,
                enum=["excluded", "referable"],
                description="Ungradable cases left out (default) or counted as referable",
            ),
        ],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request):
        sel = parse(request.user, request.query_params, kind=PERFORMANCE, single_rater=True)
        if not sel.raters:
            raise SelectionError({"rater": f"rater is required: {RATER_HELP}."})
        return self.respond(selectors.performance_cached(sel, sel.raters[0]))


class MonitoringApi(_QualityApi):
    @extend_schema(
        operation_id="quality_monitoring",
        summary="Running sensitivity and specificity of each grader against the final labels",
        description="Per grader: compared cases, running sensitivity and specificity with Wilson intervals, the same "
        "over the recent window, flags below QUALITY_MIN_SENSITIVITY / QUALITY_MIN_SPECIFICITY, and the running "
        "series.",
        parameters=[
            *SELECTION_PARAMETERS,
            OpenApiParameter("ungradable", str, enum=["excluded", "referable"]),
        ],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request):
        sel = parse(request.user, request.query_params, kind=MONITORING)
        return self.respond(selectors.monitoring_cached(sel))
