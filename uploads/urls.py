from django.urls import path

from uploads import views

app_name = "uploads"

urlpatterns = [
    path("images/", views.dashboard, name="dashboard"),
    path("images/export", views.images_export, name="export"),
    path("images/bulk", views.images_bulk, name="bulk"),
    path("images/<uuid:image_id>", views.image_page, name="image"),
    path("images/<uuid:image_id>/edit", views.image_edit, name="image-edit"),
    path("images/<uuid:image_id>/restore", views.image_restore, name="image-restore"),
    path("images/<uuid:image_id>/metadata", views.image_metadata, name="image-metadata"),
    path("images/<uuid:image_id>/edited", views.image_variant, {"variant": "edited"}, name="image-edited"),
    path(
        "images/<uuid:image_id>/edited-thumbnail",
        views.image_variant,
        {"variant": "edited_thumbnail"},
        name="image-edited-thumbnail",
    ),
]
