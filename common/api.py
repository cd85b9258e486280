"""API edges: domain errors raised by services become JSON with a message the caller can act on."""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceError(Exception):
    """A refusal by a service, with a user-facing message."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT


def exception_handler(exc, context):
    if isinstance(exc, TooManyFilesSent):
        # Django refuses the whole multipart body before the view sees it; say what the limit is.
        return Response(
            {
                "detail": f"Too many files in one request (max {settings.DATA_UPLOAD_MAX_NUMBER_FILES}). Send them "
                f"in several requests of at most {settings.DIRECT_UPLOAD_MAX_FILES} images each."
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, TooManyFieldsSent | RequestDataTooBig):
        return Response(
            {
                "detail": "The request is too large: too many form fields or too much form data besides the files "
                f"(max {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields, "
                f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)} MB)."
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, ServiceError):
        return Response({"detail": exc.message, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)
