"""API of ZIP ingestion: upload archives, list encounters, verify (and undo)."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from common.http import client_ip, user_agent
from remedio import selectors
from remedio.services import upload as upload_service
from remedio.services import verification
from uploads.api import UploadAcceptedSerializer, accepted_response

MSG_NOT_ALLOWED = "Your role does not allow seeing ZIP encounters (uploaders, data managers and admins do)."


class ZipUploadInputSerializer(serializers.Serializer):
    hospital = serializers.CharField(help_text="Hospital id or code")
    lab_unit = serializers.CharField(help_text="Lab unit id or code")
    camera = serializers.CharField(help_text="Camera id or code")
    files = serializers.ListField(child=serializers.FileField(), help_text="Repeat the field once per .zip archive")


class ZipUploadApi(APIView):
    """Upload Remidio ZIP exports; each archive becomes one item of a background job. Poll ``status_url``."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Upload Remidio ZIP archives",
        request={"multipart/form-data": ZipUploadInputSerializer},
        responses={
            202: UploadAcceptedSerializer,
            400: OpenApiResponse(description="Missing or unknown fields, or no file"),
            403: OpenApiResponse(description="Role or lab unit not allowed"),
        },
    )
    def post(self, request):
        target = upload_service.resolve_zip_target(user=request.user, data=request.data)
        job = upload_service.zip_upload_create(
            user=request.user,
            target=target,
            files=request.FILES.getlist("files"),
            client_ip=client_ip(request),
            user_agent=user_agent(request),
        )
        return accepted_response(request, job)


# --- Encounters ----------------------------------------------------------------------------------------------------


def _float(value):
    return float(value) if value is not None else None


class EncounterImageOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="image_id")
    entry_name = serializers.CharField()
    capture_time = serializers.TimeField(allow_null=True)
    laterality = serializers.CharField()
    laterality_suggestion = serializers.CharField()
    laterality_confidence = serializers.FloatField(allow_null=True)
    field = serializers.CharField()
    gradable = serializers.BooleanField(allow_null=True)
    masked = serializers.BooleanField()
    mask_state = serializers.CharField()
    mask_boxes = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    width = serializers.IntegerField(source="image.width")
    height = serializers.IntegerField(source="image.height")
    grading_status = serializers.CharField(source="image.grading_status")
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    def get_file_url(self, obj) -> str:
        return reverse("image-file", args=[obj.image_id])

    def get_thumbnail_url(self, obj) -> str:
        return reverse("image-thumbnail", args=[obj.image_id])


class ReportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    entry_name = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    extraction = serializers.CharField()
    pages = serializers.IntegerField()
    model = serializers.SerializerMethodField()
    model_version = serializers.CharField()
    dr_result = serializers.CharField()
    dr_referable = serializers.BooleanField(allow_null=True)
    amd_result = serializers.CharField()
    amd_referable = serializers.BooleanField(allow_null=True)
    glaucoma_result = serializers.CharField()
    glaucoma_referable = serializers.BooleanField(allow_null=True)
    vcdr_od = serializers.SerializerMethodField()
    vcdr_os = serializers.SerializerMethodField()
    raw_text = serializers.SerializerMethodField()

    def get_model(self, obj) -> str:
        return "Medios AI"

    def get_vcdr_od(self, obj) -> float | None:
        return _float(obj.vcdr_od)

    def get_vcdr_os(self, obj) -> float | None:
        return _float(obj.vcdr_os)

    def get_raw_text(self, obj) -> str:
        return selectors.raw_text_of(obj, identifiers=self.context.get("identifiers", False))


class EncounterOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    pseudonym = serializers.CharField(source="patient.pseudonym")
    capture_date = serializers.DateField()
    status = serializers.CharField()
    needs_manual_entry = serializers.BooleanField()
    notes = serializers.ListField(child=serializers.CharField())
    hospital = serializers.SerializerMethodField()
    lab_unit = serializers.SerializerMethodField()
    camera = serializers.SerializerMethodField()
    job_id = serializers.CharField(source="archive.job_id", allow_null=True)
    verified_by = serializers.CharField(source="verified_by.username", allow_null=True, default=None)
    verified_at = serializers.DateTimeField(allow_null=True)
    images = EncounterImageOutputSerializer(many=True)
    reports = ReportOutputSerializer(many=True)

    def get_hospital(self, obj) -> dict:
        hospital = obj.lab_unit.hospital
        return {"id": hospital.pk, "code": hospital.code, "name": hospital.name}

    def get_lab_unit(self, obj) -> dict:
        return {"id": obj.lab_unit_id, "code": obj.lab_unit.code, "name": obj.lab_unit.name}

    def get_camera(self, obj) -> dict | None:
        return {"id": obj.camera_id, "code": obj.camera.code, "name": obj.camera.name} if obj.camera else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self.context.get("identifiers"):
            data.update(selectors.identifiers_of(instance))
        return data


def encounter_document(request, encounter) -> dict:
    identifiers = access.can(request.user, "view_identifiers")
    return EncounterOutputSerializer(encounter, context={"identifiers": identifiers}).data


class EncounterFilterSerializer(serializers.Serializer):
    job = serializers.UUIDField(required=False, help_text="Encounters imported by this upload job")
    lab_unit = serializers.IntegerField(required=False)
    status = serializers.ChoiceField(["awaiting", "verified"], required=False)
    capture_date_from = serializers.DateField(required=False)
    capture_date_to = serializers.DateField(required=False)
    pseudonym = serializers.CharField(required=False)
    needs_manual_entry = serializers.BooleanField(required=False, allow_null=True, default=None)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=200)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)


def _check_can_list(user) -> None:
    if not selectors.can_list(user):
        raise PermissionDenied(MSG_NOT_ALLOWED)


class EncounterListApi(APIView):
    @extend_schema(
        summary="ZIP-ingested encounters (pseudonymous; identifiers only for data managers and admins)",
        parameters=[EncounterFilterSerializer],
        responses={200: EncounterOutputSerializer(many=True)},
    )
    def get(self, request):
        _check_can_list(request.user)
        params = EncounterFilterSerializer(data=request.query_params)
        if not params.is_valid():
            raise ValidationError(params.errors)
        data = params.validated_data
        filters = selectors.EncounterFilters(
            job=data.get("job"),
            lab_unit=data.get("lab_unit"),
            status=data.get("status"),
            capture_date_from=data.get("capture_date_from"),
            capture_date_to=data.get("capture_date_to"),
            pseudonym=data.get("pseudonym"),
            needs_manual_entry=data.get("needs_manual_entry"),
        )
        encounters = selectors.encounter_list(request.user, filters)[data["offset"] : data["offset"] + data["limit"]]
        identifiers = access.can(request.user, "view_identifiers")
        return Response(EncounterOutputSerializer(encounters, many=True, context={"identifiers": identifiers}).data)


class EncounterDetailApi(APIView):
    @extend_schema(summary="One ZIP-ingested encounter", responses={200: EncounterOutputSerializer})
    def get(self, request, encounter_id: int):
        _check_can_list(request.user)
        return Response(encounter_document(request, selectors.encounter_get(request.user, encounter_id)))


class ImageDecisionInputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Image id")
    laterality = serializers.ChoiceField(["right", "left", ""], required=False, default="")
    field = serializers.ChoiceField(["disc", "macula", ""], required=False, default="")
    gradable = serializers.BooleanField(allow_null=True, default=None)
    mask = serializers.ChoiceField(["confirm", "clear", "adjust"], required=False, default="confirm")
    mask_boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4),
        required=False,
        help_text="With mask=adjust: [[x0, y0, x1, y1], …] in pixels of the stored image",
    )


class ReportDecisionInputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    dr_result = serializers.CharField(required=False, allow_blank=True)
    amd_result = serializers.CharField(required=False, allow_blank=True)
    glaucoma_result = serializers.CharField(required=False, allow_blank=True)
    vcdr_od = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    vcdr_os = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    unusable = serializers.BooleanField(required=False, default=False)


class PatientInputSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    patient_id = serializers.CharField(required=False, allow_blank=True, max_length=60)
    age = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=5)
    sex = serializers.CharField(required=False, allow_blank=True, max_length=10)


class VerifyInputSerializer(serializers.Serializer):
    images = ImageDecisionInputSerializer(many=True)
    reports = ReportDecisionInputSerializer(many=True, required=False, default=list)
    patient = PatientInputSerializer(required=False)
    diseases = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="Disease codes to grade (DR, GLAUCOMA, AMD)"
    )


def verify_input(data: dict) -> dict:
    """Service arguments from validated VerifyInputSerializer data."""
    patient = data.get("patient")
    return {
        "images": [
            verification.ImageDecision(
                image_id=row["id"],
                laterality=row.get("laterality", ""),
                field=row.get("field", ""),
                gradable=row.get("gradable"),
                mask=row.get("mask", "confirm"),
                boxes=row.get("mask_boxes"),
            )
            for row in data["images"]
        ],
        "reports": [
            verification.ReportDecision(
                report_id=row["id"],
                values={k: v for k, v in row.items() if k in verification.REPORT_FIELDS},
                unusable=row.get("unusable", False),
            )
            for row in data.get("reports", [])
        ],
        "patient": verification.PatientFields(**patient) if patient else None,
        "diseases": data.get("diseases") or None,
    }


class EncounterVerifyApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Verify an encounter: its photographs enter grading",
        request=VerifyInputSerializer,
        responses={
            200: inline_serializer(
                "VerifyResult", {"encounter": EncounterOutputSerializer(), "tasks_created": serializers.IntegerField()}
            ),
            400: OpenApiResponse(description="Invalid or missing decisions; `errors` lists every problem"),
            404: OpenApiResponse(description="No such encounter in your scope"),
            409: OpenApiResponse(description="Already verified"),
        },
    )
    def post(self, request, encounter_id: int):
        params = VerifyInputSerializer(data=request.data)
        if not params.is_valid():
            raise ValidationError(params.errors)
        outcome = verification.encounter_verify(
            user=request.user, encounter_id=encounter_id, **verify_input(params.validated_data)
        )
        encounter = selectors.encounter_get(request.user, outcome["encounter"].pk)
        return Response({"encounter": encounter_document(request, encounter), "tasks_created": outcome["tasks_created"]})


class EncounterUndoApi(APIView):
    @extend_schema(
        summary="Undo a verification while no grading has started",
        request=None,
        responses={200: EncounterOutputSerializer, 409: OpenApiResponse(description="Grading has started")},
        parameters=[OpenApiParameter("encounter_id", int, OpenApiParameter.PATH)],
    )
    def post(self, request, encounter_id: int):
        encounter = verification.encounter_unverify(user=request.user, encounter_id=encounter_id)
        return Response(encounter_document(request, selectors.encounter_get(request.user, encounter.pk)))
