"""The Celery application: workers that run the strategies' orchestrators."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeweb.settings")

app = Celery("tradeweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
