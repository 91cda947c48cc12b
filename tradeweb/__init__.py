"""tradeweb: the Django project that serves the desk."""

from tradeweb.celery import app as celery_app

__all__ = ["celery_app"]
