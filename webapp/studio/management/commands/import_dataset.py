from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from distill.errors import DistillError


class Command(BaseCommand):
    help = "Import an interaction dataset from local files for a user, as an upload would."

    def add_arguments(self, parser):
        parser.add_argument("path", help="interactions file (csv/recbole), ratings file or directory (movielens)")
        parser.add_argument("--format", required=True, choices=["csv", "recbole", "movielens"])
        parser.add_argument("--items", help="item titles file (csv, recbole)")
        parser.add_argument("--name", help="dataset name (default: the file or directory name)")
        parser.add_argument("--owner", required=True, help="username")

    def handle(self, *args, path, format, items=None, name=None, owner, **options):
        from webapp.studio.serializers import DatasetUploadSerializer
        from webapp.studio.services import MOVIELENS_NAMES, ServiceError, store_and_prepare, validate_upload
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"no user {owner!r}; create it with `manage.py create_api_user {owner}`")
        source = Path(path)
        if format == "movielens":
            if source.is_dir():
                ratings = next((source / r for r in MOVIELENS_NAMES if (source / r).is_file()), None)
                if ratings is None:
                    raise CommandError(f"{source}: no {', '.join(MOVIELENS_NAMES)} in it")
                source = ratings
            items = items or str(source.parent / MOVIELENS_NAMES.get(source.name, "u.item"))
        files = {"interactions": source}
        if items:
            files["items"] = Path(items)
        data = {"name": name or (source.parent.name if format == "movielens" else source.stem), "format": format}
        for role, file in files.items():
            if not file.is_file():
                raise CommandError(f"{file}: file not found")
            data[role] = SimpleUploadedFile(file.name, file.read_bytes())
        serializer = DatasetUploadSerializer(data=data)
        if not serializer.is_valid():
            raise CommandError(f"{serializer.errors}")
        try:
            validate_upload(serializer.validated_data)
            dataset = store_and_prepare(user, serializer.validated_data)
        except ServiceError as exc:
            raise CommandError(str(exc.errors)) from None
        except DistillError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{dataset.pk}")
