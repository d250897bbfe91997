import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
application = get_wsgi_application()

# The students of the most recently finished runs, loaded while the process starts serving, so the
# first /recommend after a restart does not read a model (STUDENT_PRELOAD, 0 to turn it off).
if settings.STUDENT_PRELOAD:
    from webapp.studio.inference import preload_in_background
    preload_in_background(settings.STUDENT_PRELOAD)
