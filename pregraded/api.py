"""API: pre-graded upload, grade import (create, mapping, status, cancel, template) and the AI model registry."""

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from common.api import Forbidden, ServiceError
from common.http import client_ip, user_agent
from pregraded import selectors, spreadsheets, workbooks
from pregraded.models import GradeImport
from pregraded.services import imports, registry
from pregraded.services import uploads as pregraded_uploads
from uploads.api import ImageUploadApi, UploadInputSerializer


class PregradedUploadInputSerializer(UploadInputSerializer):
    dataset_label = serializers.CharField(required=False, allow_blank=True, help_text="Optional label of this batch")


class PregradedUploadApi(ImageUploadApi):
    """Upload pre-graded images (same checks as direct upload); each becomes a pre-graded image with a verification
    record and grading tasks. Import their grades with POST /api/pregraded/grades."""

    kind = "pregraded_upload"
    action = "upload_pregraded"

    def extra_params(self, request) -> dict:
        return pregraded_uploads.upload_params(dataset_label=request.data.get("dataset_label"))

    @extend_schema(
        summary="Upload pre-graded fundus images (JPG/PNG)",
        request={"multipart/form-data": PregradedUploadInputSerializer},
        responses={
            202: OpenApiResponse(description="Accepted: the job id and status URL, as for direct uploads"),
            400: OpenApiResponse(description="Missing or unknown fields, or no file"),
            403: OpenApiResponse(description="No access to the lab unit, or a role that may not upload pre-graded"),
        },
    )
    def post(self, request):
        return super().post(request)


# --- Grade import ---------------------------------------------------------------------------------------------------


class GradeImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=".xlsx or .csv with image_name, <type>_grade[, <type>_remarks, ai_probability]"
    )
    grader_type = serializers.ChoiceField(["resident", "resident2", "ai"])
    hospital = serializers.CharField(help_text="Hospital id or code")
    lab_unit = serializers.CharField(help_text="Lab unit id or code")
    disease = serializers.CharField(help_text="Disease id or code (DR, GLAUCOMA, AMD)")
    grader = serializers.CharField(required=False, help_text="resident / resident2: the grader's user id or username")
    ai_model = serializers.CharField(required=False, help_text="ai: a registered model's id (or name + version)")
    ai_model_name = serializers.CharField(required=False)
    ai_model_version = serializers.CharField(required=False)
    ai_model_description = serializers.CharField(required=False)
    review = serializers.BooleanField(required=False, help_text="Stop at the mapping step even if all values match")


class MappingInputSerializer(serializers.Serializer):
    mapping = serializers.DictField(
        child=serializers.JSONField(),
        help_text='{"<value>": "<option code>" | null (no grade) | "skip" (skip these rows)}',
    )


UNMAPPED_FIELDS = (
    "UnmappedValue",
    {
        "value": serializers.CharField(),
        "count": serializers.IntegerField(),
        "suggestion": serializers.CharField(allow_null=True),
        "suggestion_action": serializers.CharField(allow_null=True),
        "suggestion_label": serializers.CharField(allow_null=True),
        "suggestion_source": serializers.CharField(allow_null=True),
    },
)
MAPPED_FIELDS = (
    "MappedValue",
    {
        "value": serializers.CharField(),
        "count": serializers.IntegerField(),
        "option": serializers.CharField(),
        "option_label": serializers.CharField(),
    },
)
FAILURE_FIELDS = (
    "FailedRow",
    {
        "row": serializers.IntegerField(),
        "image_name": serializers.CharField(),
        "reason": serializers.CharField(),
        "code": serializers.CharField(),
    },
)
GradeImportSerializer = inline_serializer(
    "GradeImport",
    {
        "import_id": serializers.CharField(),
        "job_id": serializers.CharField(allow_null=True),
        "status": serializers.ChoiceField([s.value for s in GradeImport.Status]),
        "grader_type": serializers.CharField(),
        "hospital": serializers.CharField(),
        "lab_unit": serializers.CharField(),
        "disease": serializers.CharField(),
        "scheme": serializers.CharField(),
        "grader": serializers.CharField(allow_null=True),
        "ai_model": serializers.DictField(allow_null=True),
        "file_name": serializers.CharField(),
        "rows": serializers.IntegerField(),
        "no_grade_rows": serializers.IntegerField(),
        "unmapped": inline_serializer(*UNMAPPED_FIELDS, many=True),
        "mapped": inline_serializer(*MAPPED_FIELDS, many=True),
        "summary": inline_serializer(
            "GradeImportSummary",
            {
                "text": serializers.CharField(),
                "rows": serializers.IntegerField(),
                "imported": serializers.IntegerField(),
                "no_grade": serializers.IntegerField(),
                "failed": serializers.IntegerField(),
                "superseded": serializers.IntegerField(),
                "failure_counts": serializers.DictField(child=serializers.IntegerField()),
                "failures": inline_serializer(*FAILURE_FIELDS, many=True),
                "several_matches": serializers.ListField(child=serializers.DictField()),
            },
            allow_null=True,
        ),
        "error": serializers.CharField(allow_null=True),
        "url": serializers.CharField(),
        "mapping_url": serializers.CharField(),
        "job_status_url": serializers.CharField(allow_null=True),
        "page_url": serializers.CharField(),
    },
)

BRIEF_FIELDS = (
    "GradeImportBrief",
    {
        "import_id": serializers.CharField(),
        "job_id": serializers.CharField(allow_null=True),
        "status": serializers.CharField(),
        "grader_type": serializers.CharField(),
        "lab_unit": serializers.CharField(),
        "disease": serializers.CharField(),
        "file_name": serializers.CharField(),
        "rows": serializers.IntegerField(),
        "created_at": serializers.DateTimeField(),
        "finished_at": serializers.DateTimeField(allow_null=True),
        "url": serializers.CharField(),
    },
)


def import_document(request, grade_import: GradeImport) -> dict:
    """The import as the API shows it (``GET /api/pregraded/grades/<id>``; also the 202 answers)."""
    unmapped, mapped = selectors.mapping_document(grade_import)
    job_id = str(grade_import.job_id) if grade_import.job_id else None

    def absolute(name, *args):
        return request.build_absolute_uri(reverse(name, args=args))

    return {
        "import_id": str(grade_import.pk),
        "job_id": job_id,
        "status": grade_import.status,
        "grader_type": grade_import.grader_type,
        "hospital": grade_import.hospital.code,
        "lab_unit": grade_import.lab_unit.code,
        "disease": grade_import.disease.code,
        "scheme": grade_import.scheme.code,
        "grader": grade_import.grader.username if grade_import.grader_id else None,
        "ai_model": (
            {
                "id": grade_import.ai_model.pk,
                "name": grade_import.ai_model.name,
                "version": grade_import.ai_model.version,
            }
            if grade_import.ai_model_id
            else None
        ),
        "file_name": grade_import.original_name,
        "file_format": grade_import.file_format,
        "sheet": grade_import.sheet_name,
        "header_row": grade_import.header_row,
        "rows": grade_import.row_count,
        "no_grade_rows": grade_import.no_grade_count,
        "unmapped": unmapped,
        "mapped": mapped,
        "summary": grade_import.summary or None,
        "error": grade_import.error or None,
        "created_at": grade_import.created_at.isoformat(),
        "finished_at": grade_import.finished_at.isoformat() if grade_import.finished_at else None,
        "url": absolute("api:pregraded-grade-import", grade_import.pk),
        "mapping_url": absolute("api:pregraded-grade-import-mapping", grade_import.pk),
        "job_status_url": absolute("api:job-status", grade_import.job_id) if job_id else None,
        "page_url": absolute("pregraded:import", grade_import.pk),
    }


def _require_importer(user) -> None:
    if not access.can(user, "import_grades"):
        raise Forbidden(imports.MSG_NOT_ALLOWED)


class GradeImportsApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="The latest 50 grade imports of your lab units (open one with its url for values and summary)",
        responses={200: inline_serializer(*BRIEF_FIELDS, many=True)},
    )
    def get(self, request):
        _require_importer(request.user)
        return Response(
            [
                {
                    "import_id": str(gi.pk),
                    "job_id": str(gi.job_id) if gi.job_id else None,
                    "status": gi.status,
                    "grader_type": gi.grader_type,
                    "lab_unit": gi.lab_unit.code,
                    "disease": gi.disease.code,
                    "file_name": gi.original_name,
                    "rows": gi.row_count,
                    "created_at": gi.created_at.isoformat(),
                    "finished_at": gi.finished_at.isoformat() if gi.finished_at else None,
                    "url": request.build_absolute_uri(reverse("api:pregraded-grade-import", args=[gi.pk])),
                }
                for gi in selectors.recent_imports(request.user, limit=50)
            ]
        )

    @extend_schema(
        summary="Import grades from a spreadsheet (resident, resident2 or AI)",
        description=(
            "Reads the spreadsheet at once and answers 202. `status` is `queued` when every grade value was "
            "recognised (the import job runs in the background: poll `url`), or `needs_mapping`: answer with "
            "POST `mapping_url` for every value in `unmapped` (its `suggestion` is the remembered answer for the "
            "scheme, else the most similar option). Nothing is imported until every value is mapped."
        ),
        request={"multipart/form-data": GradeImportInputSerializer},
        responses={
            202: GradeImportSerializer,
            400: OpenApiResponse(description="The file or a field was refused; `detail` says what and what is allowed"),
            403: OpenApiResponse(description="A role that may not import grades, or a lab unit outside your scope"),
        },
    )
    def post(self, request):
        grade_import = imports.grade_import_create(
            user=request.user,
            data=request.data,
            uploaded=request.FILES.get("file"),
            client_ip=client_ip(request),
            user_agent=user_agent(request),
        )
        found = selectors.grade_import_get(request.user, grade_import.pk)
        return Response(import_document(request, found), status=status.HTTP_202_ACCEPTED)


class GradeImportApi(APIView):
    @extend_schema(
        summary="A grade import: status, values to map, and the summary once done",
        responses={200: GradeImportSerializer, 404: OpenApiResponse(description="No such import in your scope")},
    )
    def get(self, request, import_id):
        _require_importer(request.user)
        return Response(import_document(request, selectors.grade_import_get(request.user, import_id)))


class GradeImportMappingApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Map the unrecognised grade values of an import and queue it",
        request=MappingInputSerializer,
        responses={
            202: GradeImportSerializer,
            400: OpenApiResponse(description="A value is unknown, unmapped, or mapped to an unknown option"),
            404: OpenApiResponse(description="No such import in your scope"),
            409: OpenApiResponse(description="The import is no longer waiting for its mapping"),
        },
    )
    def post(self, request, import_id):
        _require_importer(request.user)
        mapping = request.data.get("mapping") if isinstance(request.data, dict) else None
        if not isinstance(mapping, dict):
            raise ServiceError(imports.MSG_MAPPING_SHAPE)
        grade_import = imports.grade_import_map(
            user=request.user,
            import_id=import_id,
            mapping=mapping,
            client_ip=client_ip(request),
            user_agent=user_agent(request),
        )
        found = selectors.grade_import_get(request.user, grade_import.pk)
        return Response(import_document(request, found), status=status.HTTP_202_ACCEPTED)


class GradeImportCancelApi(APIView):
    @extend_schema(
        summary="Cancel an import waiting for its mapping (nothing is imported)",
        request=None,
        responses={
            200: GradeImportSerializer,
            409: OpenApiResponse(description="The import is already queued or done"),
        },
    )
    def post(self, request, import_id):
        grade_import = imports.grade_import_cancel(user=request.user, import_id=import_id)
        found = selectors.grade_import_get(request.user, grade_import.pk)
        return Response(import_document(request, found))


class GradeTemplateApi(APIView):
    @extend_schema(
        summary="Template workbook for a grader type",
        parameters=[OpenApiParameter("grader_type", str, enum=list(spreadsheets.GRADER_TYPES), required=True)],
        responses={(200, workbooks.XLSX_MIME): OpenApiResponse(description="The .xlsx template")},
    )
    def get(self, request):
        _require_importer(request.user)
        grader_type = str(request.query_params.get("grader_type") or "").strip().lower()
        if grader_type not in spreadsheets.GRADER_TYPES:
            raise ServiceError(imports.MSG_GRADER_TYPE)
        response = HttpResponse(workbooks.template_workbook(grader_type), content_type=workbooks.XLSX_MIME)
        response["Content-Disposition"] = f'attachment; filename="{grader_type}-grades-template.xlsx"'
        return response


# --- AI model registry ----------------------------------------------------------------------------------------------


class AIModelSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=registry.MAX_NAME)
    version = serializers.CharField(max_length=registry.MAX_VERSION)
    description = serializers.CharField(required=False, allow_blank=True, max_length=registry.MAX_DESCRIPTION)


class AIModelsApi(APIView):
    @extend_schema(summary="Registered AI models (name + version)", responses={200: AIModelSerializer(many=True)})
    def get(self, request):
        _require_importer(request.user)
        return Response(AIModelSerializer(selectors.ai_models(), many=True).data)

    @extend_schema(
        summary="Register an AI model version",
        request=AIModelSerializer,
        responses={201: AIModelSerializer, 409: OpenApiResponse(description="That name and version are registered")},
    )
    def post(self, request):
        _require_importer(request.user)
        model = registry.ai_model_create(
            name=request.data.get("name"),
            version=request.data.get("version"),
            description=request.data.get("description") or "",
        )
        return Response(AIModelSerializer(model).data, status=status.HTTP_201_CREATED)
