from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import DefaultRouter

from webapp.studio import api, health, views

router = DefaultRouter()
router.register("datasets", api.DatasetViewSet, basename="dataset")
router.register("runs", api.RunViewSet, basename="run")
router.register("studies", api.StudyViewSet, basename="study")

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("api/auth/token/", api.obtain_token, name="token"),
    path("api/models/", api.list_models, name="models"),
    path("api/", include(router.urls)),
    # The schema and its docs need a login like every page: the schema a 401 for an API client, the
    # docs page (a browser's) the login page.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema",
                                                                    permission_classes=[IsAuthenticated])),
         name="docs"),
    path("", views.overview, name="overview"),
    path("runs/", views.run_list, name="run-list"),
    path("runs/new/", views.run_new, name="run-new"),
    path("runs/compare/", views.run_compare, name="run-compare"),
    path("runs/live/", views.run_live, name="run-live"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/curves/", views.run_curves, name="run-curves"),
    re_path(r"^runs/(?P<pk>[0-9]+)/(?P<action>cancel|retry|delete)/$", views.run_action, name="run-action"),
    path("runs/<int:pk>/artifacts/<int:artifact>/", views.artifact_download, name="artifact-download"),
    path("studies/", views.study_list, name="study-list"),
    path("studies/<int:pk>/", views.study_detail, name="study-detail"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/upload/", views.dataset_upload, name="dataset-upload"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("accounts/", views.account, name="account"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
