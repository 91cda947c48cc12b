from django.apps import AppConfig


class DeskConfig(AppConfig):
    """The trading desk: strategies, their books, the live feed and its pages."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tradeweb.desk"
    label = "desk"
