from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.reference import reference_for


class TokenApi(ObtainAuthToken):
    """POST username + password → {"token": …}; send it as ``Authorization: Token …``."""

    @extend_schema(
        summary="Obtain an API token",
        request=inline_serializer(
            "TokenRequest", {"username": serializers.CharField(), "password": serializers.CharField()}
        ),
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class ReferenceApi(APIView):
    @extend_schema(
        summary="Hospitals, lab units, cameras, diseases, areas and grade schemes you may use (ids and codes)",
        responses={
            200: inline_serializer(
                "Reference", {"hospitals": serializers.ListField(), "cameras": serializers.ListField()}
            )
        },
    )
    def get(self, request):
        return Response(reference_for(request.user))
