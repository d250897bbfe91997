from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from webapp.studio import api

router = DefaultRouter()
router.register("datasets", api.DatasetViewSet, basename="dataset")
router.register("runs", api.RunViewSet, basename="run")

urlpatterns = [
    path("healthz", api.healthz, name="healthz"),
    path("api/auth/token/", api.obtain_token, name="token"),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
