from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .api_token import api_token
from .health import healthz
from .login import ThrottledLoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("healthz", healthz, name="healthz"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/token/", api_token, name="api_token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("annotation.api_urls")),
    path("api/v1/", include("judging.api_urls")),
    path("api/v1/", include("generation.api_urls")),
    path("api/v1/", include("training.api_urls")),
    path("", include("judging.urls")),
    path("", include("generation.urls")),
    path("", include("training.urls")),
    path("", include("annotation.urls")),
]
