"""The REST API: what CI jobs script against. Token or session auth on every endpoint, every
queryset scoped to its owner (another user's object is a 404), bad input a 400 naming the field.
The viewsets parse and serialize; what is valid and what happens is `webapp.studio.services`."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action, api_view, permission_classes, throttle_classes
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from webapp.studio import services
from webapp.studio.models import Dataset, EpochMetric, Run, Study
from webapp.studio.serializers import (DatasetSerializer, DatasetUploadSerializer, RunCreateSerializer,
                                       RunListSerializer, RunSerializer, StudyCreateSerializer, StudyListSerializer,
                                       StudySerializer, chosen_of, comparison_of, latency_of, metrics_of, parse_id,
                                       text_problem)
from webapp.studio.services import ServiceError
from webapp.studio.throttles import CostThrottle, UploadThrottle


def exception_handler(exc, context):
    """DRF's handler; a ServiceError becomes a 400 naming the field (a 404 for kind "not_found"),
    a DistillError escaping a view a 400 with its message, not a 500."""
    from distill.errors import DistillError
    if isinstance(exc, ServiceError):
        exc = api_error(exc)
    if isinstance(exc, DistillError):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


class FormatIsAParameter(DefaultContentNegotiation):
    """Content negotiation that leaves `?format=` to the view (the export's model format), instead
    of taking it for DRF's renderer override."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class Conflict(APIException):
    """409: the object is not in a state that allows the request ({"detail": why, "status": ...})."""
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"

    def __init__(self, errors: dict[str, str]):
        super().__init__()
        self.detail = errors


def api_error(error: ServiceError):
    """The DRF exception for a ServiceError: {"detail": message} for the request as a whole,
    {field: [message]} for a field, as DRF reports its own field errors."""
    if error.kind == "not_found":
        return NotFound(error.message)
    if error.kind == "conflict":
        return Conflict(error.errors)
    return ValidationError({field: message if field == "detail" else [message]
                            for field, message in error.errors.items()})


# ----------------------------------------------------------------------------- auth

@extend_schema(request=inline_serializer("TokenRequest", {"username": serializers.CharField(),
                                                           "password": serializers.CharField()}),
               responses=inline_serializer("TokenResponse", {"token": serializers.CharField()}))
@api_view(["POST"])
@permission_classes([AllowAny])
@throttle_classes([UploadThrottle])
def obtain_token(request):
    """Exchange a username and password for the API token of that user."""
    if not hasattr(request.data, "get"):
        raise ValidationError({"detail": "send a JSON object {\"username\": ..., \"password\": ...}"})
    username, password = request.data.get("username"), request.data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ValidationError({"detail": "send {\"username\": ..., \"password\": ...}"})
    if len(username) > 150 or len(password) > 4096 or text_problem(username) or text_problem(password):
        raise ValidationError({"detail": "wrong username or password"})
    # The Django request: the login limits (django-axes) count it by client address and username.
    django_request = request._request
    user = authenticate(django_request, username=username, password=password)
    if getattr(django_request, "axes_locked_out", False):
        from webapp.studio.lockout import message
        return Response({"detail": message()}, status=429)
    if user is None:
        raise ValidationError({"detail": "wrong username or password"})
    token, _ = Token.objects.get_or_create(user=user)
    return Response({"token": token.key})


obtain_token.cls.throttle_scope = "token"


# ----------------------------------------------------------------------------- datasets

class DatasetViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Upload an interaction dataset with titles: stored at once, prepared by a worker."""
    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()  # for the schema; requests use get_queryset (owner-scoped)
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_classes = [UploadThrottle]
    throttle_scope = "uploads"

    def get_queryset(self):
        return Dataset.objects.filter(owner=self.request.user)

    def get_serializer_class(self):
        return DatasetUploadSerializer if self.action == "create" else DatasetSerializer

    @extend_schema(request=DatasetUploadSerializer, responses={202: DatasetSerializer})
    def create(self, request, *args, **kwargs):
        """Store the files and queue their preparation: 202 with status `processing`; poll the
        dataset until it is `ready` (stats) or `failed` (the reader's message)."""
        if not hasattr(request.data, "keys"):
            raise ValidationError({"detail": "send the dataset as multipart/form-data (name, files, options)"})
        services.check_upload_fields(request.data.keys())
        stray = [key for key in ("files", *services.LEGACY_ROLES)
                 if key in request.data and key not in request.FILES]
        if stray:
            raise ValidationError({stray[0]: ["must be a file (send it as multipart/form-data with a file name)"]})
        upload = DatasetUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        options = {name: data[name] for name in services.prepare_option_names() if name in data}
        dataset = services.create_dataset(request.user, data["name"], data.get("format"), data.get("files", []),
                                          roles={role: data[role] for role in services.LEGACY_ROLES if role in data},
                                          options=options)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_202_ACCEPTED)

    def destroy(self, request, *args, **kwargs):
        services.delete_dataset(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------------------------------- runs

LIST_FILTERS = ("status", "dataset", "student", "teacher", "tag", "q")


def _list_filters(params) -> dict[str, str]:
    """The given list filters, each one the database can compare; an unknown status or a dataset
    that is not an id is a 400 naming the filter."""
    given = {name: params[name] for name in LIST_FILTERS if params.get(name)}
    for name, value in given.items():
        problem = text_problem(value)
        if problem:
            raise ValidationError({name: problem})
    if "status" in given and given["status"] not in Run.Status.values:
        raise ValidationError({"status": f"unknown status {given['status']!r}; "
                                         f"one of {', '.join(Run.Status.values)}"})
    if "dataset" in given and parse_id(given["dataset"]) is None:
        raise ValidationError({"dataset": "must be a dataset id"})
    return given


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                 viewsets.GenericViewSet):
    """Launch, watch, cancel, retry and compare runs; query the distilled student."""
    serializer_class = RunSerializer
    queryset = Run.objects.none()  # for the schema; requests use get_queryset (owner-scoped)
    throttle_classes = [UploadThrottle]
    throttle_scope = "runs"

    def get_queryset(self):
        runs = Run.objects.filter(owner=self.request.user)
        if self.action != "list":
            return runs.prefetch_related("metrics", "latency")
        given = _list_filters(self.request.query_params)
        if "status" in given:
            runs = runs.filter(status=given["status"])
        if "dataset" in given:
            runs = runs.filter(dataset_id=parse_id(given["dataset"]))
        if "student" in given:
            runs = runs.filter(config__student=given["student"])
        if "teacher" in given:
            runs = runs.filter(config__teacher__kind=given["teacher"])
        if "tag" in given:
            runs = services.filter_tag(runs, given["tag"])
        if "q" in given:
            runs = runs.filter(name__icontains=given["q"])
        return runs

    def get_serializer_class(self):
        return RunListSerializer if self.action == "list" else RunSerializer

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=Run.Status.values),
                               OpenApiParameter("dataset", int), OpenApiParameter("student", str),
                               OpenApiParameter("teacher", str, description="the teacher kind"),
                               OpenApiParameter("tag", str), OpenApiParameter("q", str, description="part of the name")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def create(self, request):
        serializer = RunCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = services.create_run(request.user, data["dataset"], data["name"], student=data["student"],
                                  teacher=data["teacher"], distill=data["distill"], train=data["train"],
                                  tags=data["tags"], seeds=data["seeds"], seed_list=data.get("seed_list"))
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.delete_run(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(RunSerializer(services.cancel_run(self.get_object())).data)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return Response(RunSerializer(services.retry_run(self.get_object())).data)

    @extend_schema(parameters=[OpenApiParameter("ids", str, description="comma-separated run ids")],
                   responses=inline_serializer("Comparison", {"runs": serializers.ListField()}))
    @action(detail=False, methods=["get"])
    def compare(self, request):
        parts = [part.strip() for part in request.query_params.get("ids", "").split(",") if part.strip()]
        ids = [parse_id(part) for part in parts]
        if None in ids:
            raise ValidationError({"ids": "comma-separated run ids, e.g. ?ids=1,2,3"})
        if not 1 <= len(ids) <= 50:
            raise ValidationError({"ids": "give 1 to 50 run ids, e.g. ?ids=1,2,3"})
        runs = {run.pk: run for run in self.get_queryset().filter(pk__in=ids)}
        missing = [i for i in ids if i not in runs]
        if missing:
            raise NotFound(f"no run(s) {missing} among yours")
        return Response({"runs": [{"id": i, "name": runs[i].name, "status": runs[i].status,
                                   "config": runs[i].config, "metrics": metrics_of(runs[i]),
                                   "uncertainty": runs[i].analysis.get("uncertainty", {}),
                                   "latency": latency_of(runs[i]), "comparison": comparison_of(runs[i]),
                                   "chosen": chosen_of(runs[i])} for i in ids]})

    @extend_schema(responses=inline_serializer("Curves", {"curves": serializers.ListField()}))
    @action(detail=True, methods=["get"])
    def curves(self, request, pk=None):
        run = self.get_object()
        rows = EpochMetric.objects.filter(run=run)
        return Response({"curves": [{"role": r.role, "lam": r.lam, "seed": r.seed, "epoch": r.epoch, "loss": r.loss,
                                     "seconds": r.seconds, "val": r.val} for r in rows]})

    @extend_schema(
        request=inline_serializer("RecommendRequest", {
            "history": serializers.ListField(child=serializers.CharField(), required=False,
                                             help_text="one history: item ids as in the uploaded files, oldest first"),
            "histories": serializers.ListField(child=serializers.ListField(child=serializers.CharField()),
                                               required=False, help_text="several histories (at most 1,000), "
                                               "answered in one forward pass; give this or history"),
            "k": serializers.IntegerField(default=10, min_value=1, max_value=1000),
            "role": serializers.ChoiceField(choices=services.SERVED_ROLES, default="distilled")}),
        responses=inline_serializer("RecommendResponse", {
            "items": serializers.ListField(required=False, child=inline_serializer("RecommendedItem", {
                "id": serializers.CharField(), "title": serializers.CharField(), "score": serializers.FloatField()})),
            "results": serializers.ListField(required=False, child=inline_serializer("RecommendResult", {
                "items": serializers.ListField(child=serializers.DictField())}))}))
    @action(detail=True, methods=["post"], throttle_scope="recommend")
    def recommend(self, request, pk=None):
        """The distilled (or baseline) student's top-k after one history (`items`) or several
        (`results`, in their order) of item ids as in the uploaded files. A run that has not
        succeeded is a 409."""
        return Response(services.recommend(self.get_object(), request.data))

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["onnx", "torchscript"], required=True),
                    OpenApiParameter("role", str, enum=[*services.SERVED_ROLES],
                                     description="the student exported (default distilled)"),
                    OpenApiParameter("k", int, description="items the model answers, fixed at export (default 20)")],
        responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], throttle_scope="exports", throttle_classes=[CostThrottle],
            content_negotiation_class=FormatIsAParameter)
    def export(self, request, pk=None):
        """The student as a zip: model.onnx (ONNX) or model.pt (TorchScript) with its top-k,
        items.json, model_card.md/.json and serve.py (numpy + onnxruntime). The first request builds
        and checks it on the run's test histories (seconds); later ones download the kept zip. A run
        that has not succeeded is a 409."""
        run = self.get_object()
        path = services.export_run(run, request.query_params)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"run-{run.pk}-{path.name}",
                            content_type="application/zip")


# ----------------------------------------------------------------------------- studies

class StudyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    """Sweeps as one job: one child run per point, one teacher, the best point chosen on val."""
    serializer_class = StudySerializer
    queryset = Study.objects.none()  # for the schema; requests use get_queryset (owner-scoped)
    throttle_classes = [UploadThrottle]
    throttle_scope = "runs"

    def get_queryset(self):
        return Study.objects.filter(owner=self.request.user)

    def get_serializer_class(self):
        return StudyListSerializer if self.action == "list" else StudySerializer

    @extend_schema(request=StudyCreateSerializer, responses={201: StudySerializer})
    def create(self, request):
        from webapp.studio.studies import create_study
        serializer = StudyCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        study = create_study(request.user, data["dataset"], data["name"], data["base"], grid=data.get("grid"),
                             random=data.get("random"), tags=data["tags"])
        return Response(StudySerializer(study).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        from webapp.studio.studies import delete_study
        delete_study(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=StudySerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        from webapp.studio.studies import cancel_study
        return Response(StudySerializer(cancel_study(self.get_object())).data)


# ----------------------------------------------------------------------------- models

@extend_schema(responses=inline_serializer("Models", {"models": serializers.ListField(
    child=inline_serializer("ModelEntry", {"name": serializers.CharField(), "kind": serializers.CharField()}))}))
@api_view(["GET"])
def list_models(request):
    """The model and adapter directories a teacher's `model` / `adapter` may name (by these names)."""
    from webapp.studio.model_store import list_models as models
    return Response({"models": models()})
