"""`manage.py import_dataset PATH... --owner USER`: a dataset from files on the server, with the
upload's fields (format, name, every prepare option), prepared here and now."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Import a dataset from local files for a user, as an upload with the field `files` would, and "
            "prepare it now (no worker needed).")

    def add_arguments(self, parser):
        from distill.data.prepare import prepare_fields
        parser.add_argument("paths", nargs="+", help="the dataset's files, or one directory holding them; "
                                                     "recognised by their names as `prepare --input DIR` does")
        parser.add_argument("--format", choices=["csv", "recbole", "movielens", "reference"],
                            help="the files' layout (default: recognised from the names)")
        parser.add_argument("--name", help="dataset name (default: the directory or first file's name)")
        parser.add_argument("--owner", required=True, help="username")
        for option in prepare_fields():
            parser.add_argument("--" + option["name"].replace("_", "-"), dest=option["name"],
                                help=f"{option['help']} (default {option['default']!r})")

    def handle(self, *args, paths, format=None, name=None, owner, **options):
        from distill.data.prepare import prepare_fields
        from webapp.studio.models import Dataset
        from webapp.studio.services import ServiceError, create_dataset, prepare_stored
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"no user {owner!r}; create it with `manage.py create_api_user {owner}`")
        sources = [Path(p) for p in paths]
        if len(sources) == 1 and sources[0].is_dir():
            folder = sources[0]
            sources = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            default_name = folder.name
        else:
            default_name = sources[0].stem.split(".")[0]
        for source in sources:
            if not source.is_file():
                raise CommandError(f"{source}: file not found")
        values = {o["name"]: options[o["name"]] for o in prepare_fields() if options.get(o["name"]) is not None}
        handles = [open(source, "rb") for source in sources]
        try:
            files = [File(handle, name=source.name) for handle, source in zip(handles, sources)]
            dataset = create_dataset(user, name or default_name, format, files, options=values, enqueue=False,
                                     limit=False)
        except ServiceError as exc:
            raise CommandError("; ".join(f"{field}: {message}" for field, message in exc.errors.items())) from None
        finally:
            for handle in handles:
                handle.close()
        prepare_stored(dataset.pk, style="cli")
        dataset.refresh_from_db()
        if dataset.status != Dataset.Status.READY:
            raise CommandError(f"dataset {dataset.pk} failed to prepare: {dataset.error}")
        self.stdout.write(f"{dataset.pk}")
