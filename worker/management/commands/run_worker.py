import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Start a Celery worker for this machine: the gpu and cpu queues (or --queues), one task at a "
            "time (a training uses every core or the whole GPU; two at once slow each other down).")

    def add_arguments(self, parser):
        parser.add_argument("--queues", default="gpu,cpu", help="comma-separated: gpu, cpu")
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--hostname", help="worker name (default: celery@host)")

    def handle(self, *args, queues, loglevel, hostname=None, **options):
        names = [settings.QUEUE_PREFIX + q.strip() for q in queues.split(",") if q.strip()]
        argv = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "--concurrency", "1",
                "-Q", ",".join(names), "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
        if hostname:
            argv += ["--hostname", hostname]
        self.stdout.write(" ".join(argv[1:]))
        self.stdout.flush()
        os.execv(sys.executable, argv)
