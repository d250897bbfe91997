from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Enqueue again every unfinished run whose heartbeat is older than RUN_STALE_SECONDS."

    def handle(self, *args, **options):
        from webapp.studio.tasks import recover_stale_runs
        self.stdout.write(f"{recover_stale_runs()} run(s) enqueued again")
