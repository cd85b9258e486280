"""Grading API, for scripts and the grading page alike. Thin: parse, call one service or selector, serialise."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Forbidden
from grading import selectors, services
from grading.models import Consensus, Grade, GradingTask
from uploads.selectors import image_get

# --- Output ------------------------------------------------------------------------------------------------------------


class OptionOutput(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()
    key = serializers.CharField(required=False, help_text="Keyboard shortcut on the grading page")
    ordinal = serializers.IntegerField()
    referable = serializers.BooleanField()
    ungradable = serializers.BooleanField()


class GradeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    image_id = serializers.UUIDField()
    disease = serializers.CharField(source="disease.code")
    scheme = serializers.CharField(source="scheme.code")
    option = serializers.CharField(source="option.code", allow_null=True, default=None)
    option_label = serializers.CharField(source="option.label", allow_null=True, default=None)
    raw_value = serializers.CharField()
    grader_type = serializers.CharField()
    grader = serializers.SerializerMethodField()
    ai_model = serializers.SerializerMethodField()
    task_id = serializers.IntegerField(allow_null=True)
    remarks = serializers.CharField()
    probability = serializers.FloatField(allow_null=True)
    seconds_spent = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    is_current = serializers.BooleanField()
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)

    def get_grader(self, grade) -> str | None:
        if not self.context.get("names", True):
            return None
        return grade.grader.username if grade.grader_id else None

    def get_ai_model(self, grade) -> dict | None:
        if not grade.ai_model_id:
            return None
        return {"id": grade.ai_model_id, "name": grade.ai_model.name, "version": grade.ai_model.version}


class ConsensusOutput(serializers.Serializer):
    id = serializers.IntegerField()
    image_id = serializers.UUIDField()
    disease = serializers.CharField(source="disease.code")
    scheme = serializers.CharField(source="scheme.code")
    option = serializers.CharField(source="option.code")
    option_label = serializers.CharField(source="option.label")
    method = serializers.CharField()
    grade_ids = serializers.SerializerMethodField()
    is_current = serializers.BooleanField()
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)
    created_at = serializers.DateTimeField()

    def get_grade_ids(self, record) -> list[int]:
        return sorted(g.pk for g in record.grades.all())


def task_payload(request, task: GradingTask) -> dict:
    """What a grader (or script) needs to grade a task, and nothing of other graders unless the scheme allows it."""
    options = selectors.options_offered(task.scheme)
    shown = selectors.task_context_grades(task, request.user)["grades"]
    companions = selectors.image_companions(task.image, request.user)
    return {
        "task_id": task.pk,
        "slot": task.slot,
        "disease": task.disease.code,
        "image_id": str(task.image_id),
        "image_url": request.build_absolute_uri(reverse("image-file", args=[task.image_id])),
        "area": task.image.area.code if task.image.area_id else None,
        "lease_expires_at": task.lease_expires_at,
        "grade_url": request.build_absolute_uri(reverse("api:grading-grade", args=[task.pk])),
        "scheme": {
            "code": task.scheme.code,
            "name": task.scheme.name,
            "options": OptionOutput(options, many=True).data,
        },
        "other_grades": [
            {
                "grader_type": g.grader_type,
                "option": g.option.code if g.option else None,
                "option_label": g.option.label if g.option else None,
                "remarks": g.remarks,
                "ai_model": str(g.ai_model) if g.ai_model_id else None,
            }
            for g in shown
        ],
        "companions": [
            {
                "image_id": str(other.pk),
                "image_url": request.build_absolute_uri(reverse("image-file", args=[other.pk])),
                "area": other.area.code if other.area_id else None,
            }
            for other in companions
        ],
    }


TaskOutput = inline_serializer(
    "GradingTask",
    {
        "task_id": serializers.IntegerField(),
        "slot": serializers.ChoiceField(choices=["primary", "secondary", "arbitration"]),
        "disease": serializers.CharField(),
        "image_id": serializers.UUIDField(),
        "image_url": serializers.URLField(),
        "area": serializers.CharField(allow_null=True),
        "lease_expires_at": serializers.DateTimeField(),
        "grade_url": serializers.URLField(),
        "scheme": inline_serializer(
            "GradingTaskScheme",
            {"code": serializers.CharField(), "name": serializers.CharField(), "options": OptionOutput(many=True)},
        ),
        "other_grades": serializers.ListField(
            child=serializers.DictField(), help_text="Empty when blinded; both slot grades for arbitration"
        ),
        "companions": serializers.ListField(child=serializers.DictField(), help_text="Other eye, when known"),
    },
)

# --- Views -------------------------------------------------------------------------------------------------------------


class NextInput(serializers.Serializer):
    disease = serializers.CharField(help_text="Disease code or id (DR, GLAUCOMA, AMD)")


class NextTaskApi(APIView):
    @extend_schema(
        summary="Lease the next grading task of a disease's queue",
        request=NextInput,
        responses={
            200: TaskOutput,
            204: OpenApiResponse(description="Nothing left in this queue for you"),
            400: OpenApiResponse(description="Unknown disease"),
            403: OpenApiResponse(description="Your role does not grade, or you have no lab unit"),
        },
    )
    def post(self, request):
        data = NextInput(data=request.data)
        data.is_valid(raise_exception=True)
        task = services.task_next(user=request.user, disease=data.validated_data["disease"])
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(task_payload(request, selectors.task_get(request.user, task.pk)))


class TaskApi(APIView):
    @extend_schema(summary="A grading task (as POST /api/grading/next returns it)", responses={200: TaskOutput})
    def get(self, request, task_id: int):
        task = selectors.task_get(request.user, task_id)
        if task.leased_to_id != request.user.pk and task.completed_by_id != request.user.pk:
            raise Forbidden("This task is not yours: ask for your next task (POST /api/grading/next).")
        return Response(task_payload(request, task))


class GradeInput(serializers.Serializer):
    option = serializers.CharField(allow_blank=True, help_text="Option code of the task's scheme (see the task)")
    remarks = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=True)
    seconds_spent = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=86400)


GradeCreated = inline_serializer(
    "GradeCreated",
    {
        "grade": GradeOutput(),
        "consensus": ConsensusOutput(allow_null=True),
        "arbitration_queued": serializers.BooleanField(),
        "revised": serializers.BooleanField(),
    },
)


class GradeApi(APIView):
    @extend_schema(
        summary="Grade a task you hold (or revise your grade before the next stage starts)",
        request=GradeInput,
        responses={
            201: GradeCreated,
            400: OpenApiResponse(description="Option outside the scheme, remarks too long"),
            403: OpenApiResponse(description="Your role does not allow this slot; arbitration of an image you graded"),
            404: OpenApiResponse(description="No such task in your lab units"),
            409: OpenApiResponse(
                description="Leased to someone else, not leased to you, lease expired, already graded"
            ),
        },
    )
    def post(self, request, task_id: int):
        data = GradeInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.grade_submit(
            user=request.user,
            task_id=task_id,
            option=data.validated_data["option"],
            remarks=data.validated_data.get("remarks", ""),
            seconds_spent=data.validated_data.get("seconds_spent"),
        )
        grade = Grade.objects.select_related("disease", "scheme", "option", "grader").get(pk=result.grade.pk)
        consensus = None
        if result.consensus is not None:
            record = (
                Consensus.objects.select_related("disease", "scheme", "option")
                .prefetch_related("grades")
                .get(pk=result.consensus.pk)
            )
            consensus = ConsensusOutput(record).data
        return Response(
            {
                "grade": GradeOutput(grade).data,
                "consensus": consensus,
                "arbitration_queued": result.arbitration_queued,
                "revised": result.revised,
            },
            status=status.HTTP_201_CREATED,
        )


class SkipApi(APIView):
    @extend_schema(
        summary="Give a task you hold back to the queue; it is not offered to you again",
        request=None,
        responses={200: inline_serializer("Skipped", {"task_id": serializers.IntegerField()})},
    )
    def post(self, request, task_id: int):
        task = services.task_skip(user=request.user, task_id=task_id)
        return Response({"task_id": task.pk})


class LeaseApi(APIView):
    @extend_schema(
        summary="Renew the lease of a task you hold",
        request=None,
        responses={
            200: inline_serializer(
                "Lease", {"task_id": serializers.IntegerField(), "lease_expires_at": serializers.DateTimeField()}
            )
        },
    )
    def post(self, request, task_id: int):
        task = services.task_lease_renew(user=request.user, task_id=task_id)
        return Response({"task_id": task.pk, "lease_expires_at": task.lease_expires_at})


class ImageGradesApi(APIView):
    @extend_schema(
        summary="Every grade of an image (history included) and its consensus records",
        responses={
            200: inline_serializer(
                "ImageGrades",
                {
                    "image_id": serializers.UUIDField(),
                    "blinded": serializers.BooleanField(help_text="True: only your own grades are shown for now"),
                    "grades": GradeOutput(many=True),
                    "consensus": ConsensusOutput(many=True),
                },
            ),
            404: OpenApiResponse(description="No such image in your lab units"),
        },
    )
    def get(self, request, image_id):
        image = image_get(request.user, image_id)
        data = selectors.image_grades(image, request.user)
        visibility = data["visibility"]
        grades = [g for block in data["schemes"] for g in block["grades"]]
        consensus = [c for block in data["schemes"] for c in block["consensus"]]
        return Response(
            {
                "image_id": str(image.pk),
                "blinded": not visibility.all_grades,
                "grades": GradeOutput(grades, many=True, context={"names": visibility.names}).data,
                "consensus": ConsensusOutput(consensus, many=True).data,
            }
        )
