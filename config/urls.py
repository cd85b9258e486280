from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import api as accounts_api
from accounts import views as accounts_views
from grading import api_urls as grading_api
from jobs import api as jobs_api
from pregraded import api_urls as pregraded_api
from remedio import api_urls as remedio_api
from uploads import api as uploads_api
from uploads import api_urls as uploads_api_urls
from uploads import views as uploads_views

# One "api" namespace; each feature app lists its own routes in <app>/api_urls.py.
api_patterns = [
    path("auth/token/", accounts_api.TokenApi.as_view(), name="token"),
    path("reference/", accounts_api.ReferenceApi.as_view(), name="reference"),
    path("direct/upload", uploads_api.ImageUploadApi.as_view(), name="direct-upload"),
    path("upload-jobs/<uuid:job_id>/status", jobs_api.JobStatusApi.as_view(), name="job-status"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *uploads_api_urls.urlpatterns,
    *grading_api.urlpatterns,
    *pregraded_api.urlpatterns,
    *remedio_api.urlpatterns,
]

urlpatterns = [
    path("", accounts_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/token/", accounts_views.api_token, name="api-token"),
    path("direct/upload", uploads_views.direct_upload, name="direct-upload"),
    path("images/<uuid:image_id>/file", uploads_views.image_file, name="image-file"),
    path("images/<uuid:image_id>/thumbnail", uploads_views.image_file, {"variant": "thumbnail"}, name="image-thumbnail"),
    path("", include("jobs.urls")),
    path("", include("uploads.urls")),
    path("", include("grading.urls")),
    path("", include("pregraded.urls")),
    path("", include("remedio.urls")),
    path("api/", include((api_patterns, "api"))),
    path("admin/", admin.site.urls),
]
