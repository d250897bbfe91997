from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "webapp.studio"
    label = "studio"
    verbose_name = "DLLM2Rec Studio"

    def ready(self) -> None:
        from webapp.studio import checks  # noqa: F401  (registers the deploy checks)
