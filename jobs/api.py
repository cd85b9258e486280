from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors


class JobItemStatusSerializer(serializers.Serializer):
    filename = serializers.CharField()
    status = serializers.ChoiceField(["queued", "processing", "completed", "error"])
    error = serializers.CharField(allow_null=True)
    image_id = serializers.CharField(allow_null=True)
    result = serializers.DictField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class JobStatusSerializer(serializers.Serializer):
    job_id = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(["queued", "processing", "done", "error"])
    error = serializers.CharField(allow_null=True)
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()
    rejected = serializers.IntegerField()
    uploader = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    items = JobItemStatusSerializer(many=True)


class JobStatusApi(APIView):
    @extend_schema(
        summary="Status of an upload or import job",
        responses={200: JobStatusSerializer, 404: OpenApiResponse(description="No such job in your scope")},
    )
    def get(self, request, job_id):
        job = selectors.job_get(request.user, job_id)
        return Response(selectors.job_status(job))
