"""API routes of this app, mounted under /api/ in the \"api\" namespace by config/urls.py.

``images/<id>/grades`` belongs to the grading app."""

from django.urls import path

from uploads import api

urlpatterns = [
    path("images/", api.ImageListApi.as_view(), name="images"),
    path("images/export", api.ImageExportApi.as_view(), name="images-export"),
    path("images/bulk", api.ImageBulkApi.as_view(), name="images-bulk"),
    path("images/summary", api.ImageSummaryApi.as_view(), name="images-summary"),
    path("images/<uuid:image_id>", api.ImageDetailApi.as_view(), name="image"),
    path("images/<uuid:image_id>/file", api.ImageFileApi.as_view(), name="image-file"),
    path("images/<uuid:image_id>/edit", api.ImageEditApi.as_view(), name="image-edit"),
    path("images/<uuid:image_id>/history", api.ImageHistoryApi.as_view(), name="image-history"),
]
