from urllib.parse import urlencode

from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from common.api import Forbidden, ServiceError
from common.http import client_ip, user_agent
from uploads import actions, exports, pagination, selectors, services, serving
from uploads import filters as filter_rules
from uploads.actions import NotFound
from uploads.audit import Origin
from uploads.filters import FilterChoices
from uploads.models import GradingStatus


class UploadInputSerializer(serializers.Serializer):
    hospital = serializers.CharField(help_text="Hospital id or code")
    lab_unit = serializers.CharField(help_text="Lab unit id or code")
    camera = serializers.CharField(help_text="Camera id or code")
    disease = serializers.CharField(help_text="Disease id or code (DR, GLAUCOMA, AMD)")
    area = serializers.CharField(help_text="Area id or code (left, right, both)")
    mydriatic = serializers.BooleanField(required=False, default=False)
    files = serializers.ListField(child=serializers.FileField(), help_text="Repeat the field once per image")


UploadAcceptedSerializer = inline_serializer(
    "UploadAccepted",
    {
        "job_id": serializers.CharField(),
        "status": serializers.CharField(),
        "total": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "status_url": serializers.CharField(),
        "processing_url": serializers.CharField(),
    },
)


def accepted_response(request, job) -> Response:
    return Response(
        {
            "job_id": str(job.pk),
            "status": job.status,
            "total": job.items.count(),
            "rejected": job.rejected_count,
            "status_url": request.build_absolute_uri(reverse("api:job-status", args=[job.pk])),
            "processing_url": request.build_absolute_uri(reverse("jobs:processing", args=[job.pk])),
        },
        status=status.HTTP_202_ACCEPTED,
    )


class ImageUploadApi(APIView):
    """Upload images; each file becomes one item of a background job. Poll ``status_url`` for the outcome."""

    parser_classes = [MultiPartParser, FormParser]
    kind = "direct_upload"
    action = "upload_images"

    def extra_params(self, request) -> dict | None:
        return None

    @extend_schema(
        summary="Upload fundus images (JPG/PNG)",
        request={"multipart/form-data": UploadInputSerializer},
        responses={
            202: UploadAcceptedSerializer,
            400: OpenApiResponse(description="Missing or unknown fields, or no file"),
            403: OpenApiResponse(description="No access to the lab unit"),
        },
    )
    def post(self, request):
        target = services.resolve_target(user=request.user, data=request.data, action=self.action)
        job = services.image_upload_create(
            user=request.user,
            target=target,
            files=request.FILES.getlist("files"),
            client_ip=client_ip(request),
            user_agent=user_agent(request),
            kind=self.kind,
            extra_params=self.extra_params(request),
        )
        return accepted_response(request, job)


# --- Image dashboard API ----------------------------------------------------------------------------------------------

MSG_NO_VIEW = "Your role does not allow viewing images."
LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 200
METADATA_KEYS = ("hospital", "lab_unit", "camera", "disease", "area", "mydriatic")


def _require_view(user) -> None:
    if not access.can(user, "view_images"):
        raise Forbidden(MSG_NO_VIEW)


def _image_or_error(user, image_id):
    """The image in the caller's scope; 410 with when/by whom for a deleted one, 404 otherwise."""
    try:
        return selectors.image_for_page(user, image_id)
    except selectors.ImageGone as gone:
        raise Gone(gone.message) from None
    except Http404:
        raise NotFound("Image not found.") from None


class Gone(ServiceError):
    status_code = status.HTTP_410_GONE


class RefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()


class ImageOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    file_name = serializers.CharField(source="original_name")
    hospital = RefSerializer()
    lab_unit = RefSerializer()
    camera = RefSerializer(allow_null=True)
    disease = RefSerializer()
    area = RefSerializer(allow_null=True)
    mydriatic = serializers.BooleanField()
    source = serializers.CharField()
    is_pregraded = serializers.BooleanField()
    dataset_label = serializers.CharField()
    uploaded_by = serializers.CharField(source="uploaded_by.username")
    uploaded_at = serializers.DateTimeField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    size = serializers.IntegerField()
    mime = serializers.CharField()
    md5 = serializers.CharField()
    grading_status = serializers.ChoiceField(GradingStatus.choices)
    grading_status_label = serializers.CharField(source="get_grading_status_display")
    edited = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()

    def get_edited(self, image) -> bool:
        return bool(image.edited_file)

    @extend_schema_field(
        inline_serializer(
            "ImageUrls",
            {
                "page": serializers.URLField(),
                "file": serializers.URLField(),
                "original": serializers.URLField(),
                "edited": serializers.URLField(allow_null=True),
                "thumbnail": serializers.URLField(),
            },
        )
    )
    def get_urls(self, image) -> dict:
        request = self.context["request"]
        file_url = request.build_absolute_uri(reverse("api:image-file", args=[image.pk]))
        return {
            "page": request.build_absolute_uri(reverse("uploads:image", args=[image.pk])),
            "file": file_url,
            "original": f"{file_url}?variant=original",
            "edited": f"{file_url}?variant=edited" if image.edited_file else None,
            "thumbnail": f"{file_url}?variant=thumbnail",
        }


class ImageEditSerializer(serializers.Serializer):
    operations = serializers.ListField(child=serializers.DictField())
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    edited_by = serializers.CharField(source="edited_by.username", allow_null=True, default=None)
    edited_at = serializers.DateTimeField()


class ImageDetailSerializer(ImageOutputSerializer):
    edit = serializers.SerializerMethodField()
    pixels_editable = serializers.SerializerMethodField()
    pixels_edit_refusal = serializers.SerializerMethodField()

    @extend_schema_field(ImageEditSerializer(allow_null=True))
    def get_edit(self, image):
        edit = serving._edit(image)
        return ImageEditSerializer(edit).data if edit else None

    def get_pixels_editable(self, image) -> bool:
        return actions.edit_refusal(image) is None

    def get_pixels_edit_refusal(self, image) -> str | None:
        return actions.edit_refusal(image)


ImageListSerializer = inline_serializer(
    "ImageList",
    {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": ImageOutputSerializer(many=True),
    },
)

FILTER_PARAMETERS = [
    OpenApiParameter("hospital", str, description="Hospital id or code (repeat or comma-separate for several)"),
    OpenApiParameter("lab_unit", str, description="Lab unit id or code"),
    OpenApiParameter("camera", str, description="Camera id or code"),
    OpenApiParameter("disease", str, description="Disease id or code (DR, GLAUCOMA, AMD)"),
    OpenApiParameter("area", str, description="Area id or code (left, right, both)"),
    OpenApiParameter("mydriatic", str, enum=["yes", "no"]),
    OpenApiParameter("pregraded", str, enum=["yes", "no"]),
    OpenApiParameter("grading", str, enum=list(GradingStatus.values), description="Grading status (repeatable)"),
    OpenApiParameter("dataset", str, description="Dataset label (exact, case-insensitive)"),
    OpenApiParameter("uploader", str, description="Uploader user id or username"),
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="Uploaded on or after (YYYY-MM-DD)"),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="Uploaded on or before (YYYY-MM-DD)"),
    OpenApiParameter("q", str, description="File name contains"),
    OpenApiParameter("ids", str, description="Only these image ids (at most 50; repeat or comma-separate)"),
    OpenApiParameter("sort", str, enum=list(filter_rules.SORTS)),
]


def _parse_filters(request, choices: FilterChoices | None = None):
    try:
        return filter_rules.parse(request.query_params, choices or FilterChoices(request.user))
    except filter_rules.FilterError as exc:
        raise ServiceError(" ".join(exc.errors), errors=exc.errors) from None


class ImageListApi(APIView):
    """The images you may see, filtered like the dashboard, newest first, with keyset pagination: follow ``next``."""

    @extend_schema(
        operation_id="images_list",
        summary="List images (dashboard filters, keyset pagination)",
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter(
                "limit", int, description=f"Images per page, 1–{LIST_MAX_LIMIT} (default {LIST_DEFAULT_LIMIT})"
            ),
            OpenApiParameter("after", str, description="Cursor from a previous page's `next` link"),
            OpenApiParameter("before", str, description="Cursor from a page's `previous` link"),
        ],
        responses={200: ImageListSerializer, 400: OpenApiResponse(description="A filter value is not allowed")},
    )
    def get(self, request):
        _require_view(request.user)
        choices = FilterChoices(request.user)
        filters = _parse_filters(request, choices)
        raw_limit = str(request.query_params.get("limit") or LIST_DEFAULT_LIMIT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX_LIMIT:
            raise ServiceError(f"limit must be a whole number from 1 to {LIST_MAX_LIMIT}, got {raw_limit[:20]!r}.")
        limit = int(raw_limit)
        try:
            page = selectors.images_page(
                request.user,
                filters,
                per_page=limit,
                after=request.query_params.get("after"),
                before=request.query_params.get("before"),
                choices=choices,
            )
        except pagination.InvalidCursor as exc:
            raise ServiceError(str(exc)) from None
        base = reverse("api:images")
        keep = filters.querystring(limit=limit if limit != LIST_DEFAULT_LIMIT else None)

        def link(**cursor) -> str:
            extra = urlencode(cursor)
            return request.build_absolute_uri(f"{base}?{'&'.join(p for p in (keep, extra) if p)}".rstrip("?"))

        previous = None
        if page.has_prev:
            previous = link(before=page.prev_token) if page.prev_token else link()
        return Response(
            {
                "count": selectors.images_count(request.user, filters),
                "next": link(after=page.next_token) if page.next_token else None,
                "previous": previous,
                "results": ImageOutputSerializer(page.rows, many=True, context={"request": request}).data,
            }
        )


class ImagePatchSerializer(serializers.Serializer):
    hospital = serializers.CharField(required=False, help_text="Hospital id or code (must be the lab unit's)")
    lab_unit = serializers.CharField(required=False, help_text="Lab unit id or code, inside your lab units")
    camera = serializers.CharField(required=False)
    disease = serializers.CharField(required=False)
    area = serializers.CharField(required=False)
    mydriatic = serializers.BooleanField(required=False)


def _metadata_data(data) -> dict:
    if not isinstance(data, dict) and not hasattr(data, "keys"):
        raise ServiceError("Send a JSON object with the fields to change: " + ", ".join(METADATA_KEYS) + ".")
    unknown = sorted(key for key in data if key not in METADATA_KEYS)
    if unknown:
        raise ServiceError(
            f"Unknown or read-only field(s): {', '.join(unknown)}. Editable: {', '.join(METADATA_KEYS)}."
        )
    return {key: data.get(key) for key in data}


class ImageDetailApi(APIView):
    @extend_schema(
        summary="One image: metadata, grading status, edit",
        responses={
            200: ImageDetailSerializer,
            404: OpenApiResponse(description="No such image in your scope"),
            410: OpenApiResponse(description="The image was deleted"),
        },
    )
    def get(self, request, image_id):
        _require_view(request.user)
        image = _image_or_error(request.user, image_id)
        return Response(ImageDetailSerializer(image, context={"request": request}).data)

    @extend_schema(
        summary="Change an image's metadata (hospital, lab unit, camera, disease, area, mydriatic)",
        request=ImagePatchSerializer,
        responses={
            200: ImageDetailSerializer,
            400: OpenApiResponse(description="A value is not allowed"),
            403: OpenApiResponse(description="No access to the target lab unit, or your role may not edit"),
        },
    )
    def patch(self, request, image_id):
        _require_view(request.user)
        image = _image_or_error(request.user, image_id)
        actions.images_metadata_update(
            user=request.user, image_ids=[image.pk], data=_metadata_data(request.data), origin=Origin.of(request)
        )
        image = _image_or_error(request.user, image_id)
        return Response(ImageDetailSerializer(image, context={"request": request}).data)

    @extend_schema(
        summary="Delete an image and its files (graded images: admins only, with confirm_graded=true)",
        parameters=[OpenApiParameter("confirm_graded", bool, description="Second confirmation for a graded image")],
        responses={
            200: inline_serializer(
                "ImageDeleted", {"deleted": serializers.IntegerField(), "files": serializers.ListField()}
            ),
            403: OpenApiResponse(description="Graded image and you are not an admin"),
            409: OpenApiResponse(description="Graded image: confirm_graded=true is needed"),
        },
    )
    def delete(self, request, image_id):
        _require_view(request.user)
        image = _image_or_error(request.user, image_id)
        result = actions.images_delete(
            user=request.user,
            image_ids=[image.pk],
            confirm_count=1,
            confirm_graded=_truthy(request.query_params.get("confirm_graded") or request.data.get("confirm_graded")),
            origin=Origin.of(request),
        )
        return Response({"deleted": result.deleted, "files": result.files})


def _truthy(value) -> bool:
    return value is True or str(value or "").strip().lower() in {"1", "true", "yes", "on"}


class ImageFileApi(APIView):
    @extend_schema(
        summary="The stored image file (streamed, or a redirect to a short-lived signed URL on S3)",
        parameters=[
            OpenApiParameter(
                "variant",
                str,
                enum=list(serving.VARIANTS),
                description="current (edited if any, else original; default), original, "
                "edited, thumbnail, edited_thumbnail",
            )
        ],
        responses={
            (200, "image/*"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="Signed URL (S3)"),
            404: OpenApiResponse(description="No such image or variant"),
        },
    )
    def get(self, request, image_id):
        _require_view(request.user)
        variant = request.query_params.get("variant") or "current"
        if variant not in serving.VARIANTS:
            raise ServiceError(serving.MSG_UNKNOWN_VARIANT.format(variant=variant[:40]))
        image = _image_or_error(request.user, image_id)
        try:
            return serving.file_response(image, variant, download=_truthy(request.query_params.get("download")))
        except Http404 as exc:
            raise NotFound(str(exc)) from None


class ImageEditInputSerializer(serializers.Serializer):
    operations = serializers.ListField(
        child=serializers.DictField(),
        help_text='Applied in order to the original, e.g. [{"op": "rotate", "degrees": 90}, {"op": "crop", "x": 0, '
        '"y": 0, "width": 800, "height": 800}, {"op": "mask", ...}, {"op": "flip", "axis": "horizontal"}, '
        '{"op": "adjust", "brightness": 1.1, "contrast": 1.2}]',
    )


class ImageEditApi(APIView):
    @extend_schema(
        summary="Save an edited version (rotate, flip, crop, mask, brightness/contrast); the original is kept",
        request=ImageEditInputSerializer,
        responses={
            200: ImageDetailSerializer,
            400: OpenApiResponse(description="An operation is not valid"),
            409: OpenApiResponse(description="Pre-graded, or grading has started"),
        },
    )
    def post(self, request, image_id):
        _require_view(request.user)
        image = _image_or_error(request.user, image_id)
        operations = request.data.get("operations") if hasattr(request.data, "get") else None
        image = actions.image_edit_save(
            user=request.user, image_id=image.pk, operations=operations, origin=Origin.of(request)
        )
        return Response(ImageDetailSerializer(image, context={"request": request}).data)

    @extend_schema(
        summary="Restore the original (delete the edited version)",
        responses={200: ImageDetailSerializer, 409: OpenApiResponse(description="No edit, pre-graded, or in grading")},
    )
    def delete(self, request, image_id):
        _require_view(request.user)
        image = _image_or_error(request.user, image_id)
        image = actions.image_edit_restore(user=request.user, image_id=image.pk, origin=Origin.of(request))
        return Response(ImageDetailSerializer(image, context={"request": request}).data)


class AuditEventSerializer(serializers.Serializer):
    action = serializers.CharField()
    action_label = serializers.CharField()
    actor = serializers.CharField(source="actor_username")
    created_at = serializers.DateTimeField()
    summary = serializers.CharField()
    details = serializers.DictField()


class ImageHistoryApi(APIView):
    @extend_schema(
        summary="The image's audit trail (uploads, edits, metadata changes), newest first",
        responses={200: AuditEventSerializer(many=True)},
    )
    def get(self, request, image_id):
        _require_view(request.user)
        image = _image_or_error(request.user, image_id)
        return Response(AuditEventSerializer(selectors.image_history(image), many=True).data)


class BulkInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(["update", "delete"])
    ids = serializers.ListField(child=serializers.CharField(), help_text="At most 50 image ids")
    changes = ImagePatchSerializer(required=False, help_text="For update: the fields to set on every image")
    confirm_count = serializers.IntegerField(required=False, help_text="For delete: the number of images, to confirm")
    confirm_graded = serializers.BooleanField(
        required=False, default=False, help_text="For delete of graded images (admins): second confirmation"
    )


class ImageBulkApi(APIView):
    @extend_schema(
        summary="Bulk action on up to 50 images: update metadata or delete (all or nothing)",
        request=BulkInputSerializer,
        responses={
            200: OpenApiResponse(description="{updated, unchanged, ids} or {deleted, files}"),
            400: OpenApiResponse(description="Too many images, a bad value, or the deletion not confirmed"),
            404: OpenApiResponse(description="An id is not an image in your scope (nothing changed)"),
            409: OpenApiResponse(description="Graded images: confirm_graded=true is needed"),
        },
    )
    def post(self, request):
        _require_view(request.user)
        data = request.data if hasattr(request.data, "get") else {}
        action = data.get("action")
        ids = data.get("ids")
        if hasattr(data, "getlist") and not isinstance(ids, list):
            ids = data.getlist("ids")
        if not isinstance(ids, list):
            raise ServiceError("ids must be a list of image ids (at most 50).")
        origin = Origin.of(request)
        if action == "update":
            changes = data.get("changes")
            if not isinstance(changes, dict):
                raise ServiceError(
                    "changes must be an object with the fields to set: " + ", ".join(METADATA_KEYS) + "."
                )
            result = actions.images_metadata_update(
                user=request.user, image_ids=ids, data=_metadata_data(changes), origin=origin
            )
            return Response(
                {
                    "updated": len(result.updated),
                    "unchanged": len(result.unchanged),
                    "ids": [str(image.pk) for image in result.updated],
                }
            )
        if action == "delete":
            result = actions.images_delete(
                user=request.user,
                image_ids=ids,
                confirm_count=data.get("confirm_count"),
                confirm_graded=_truthy(data.get("confirm_graded")),
                origin=origin,
            )
            return Response({"deleted": result.deleted, "files": result.files})
        raise ServiceError(f"Unknown action {str(action)[:40]!r}. Allowed: update, delete.")


class ImageSummaryApi(APIView):
    @extend_schema(
        summary="The dashboard's KPI cards: total images and the top 3 cameras, diseases and areas",
        responses={200: OpenApiResponse(description="{total, cameras, diseases, areas}")},
    )
    def get(self, request):
        _require_view(request.user)
        return Response(selectors.image_kpis(request.user, FilterChoices(request.user)))


class ImageExportApi(APIView):
    """CSV or XLSX of the filtered list (or of ``ids``), streamed. ``include=links`` adds download URLs; registered
    providers add more (``include=grades`` for consensus and AI grades when grading provides them)."""

    def perform_content_negotiation(self, request, force=False):
        # ``format`` names the export format here, not a DRF renderer; errors are JSON.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        summary="Export images as CSV or XLSX (no patient identifiers; formulas neutralised)",
        parameters=[
            *FILTER_PARAMETERS,
            OpenApiParameter("format", str, enum=["csv", "xlsx"]),
            OpenApiParameter("include", str, description="Comma-separated: links, and registered extras (grades)"),
        ],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, 400: OpenApiResponse(description="A value is not allowed")},
    )
    def get(self, request):
        _require_view(request.user)
        filters = _parse_filters(request)
        try:
            fmt, include = exports.parse_request(request.query_params)
        except exports.ExportError as exc:
            raise ServiceError(str(exc)) from None
        export = exports.ExportRequest(format=fmt, filters=filters, include=include)
        exports.record(user=request.user, export=export, origin=Origin.of(request))
        return exports.response(user=request.user, request=export, http_request=request)
