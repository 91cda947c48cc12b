"""The Celery application: workers that run the strategies' orchestrators."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeweb.settings")

app = Celery("tradeweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
def close_broken_database_connections(**kwargs) -> None:
    """Workers keep their database connection from task to task (CELERY_DB_REUSE_MAX): reconnecting for
    every candle cost about a quarter of a worker's time. One that broke (the database restarted) or
    outlived CONN_MAX_AGE is closed here, before the next task, and opened again on first use."""
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_process_init.connect
def report_status_while_idle(**kwargs) -> None:
    """Each pool process reports its status every WORKER_STATUS_HEARTBEAT_SECONDS, even with no candle to take."""
    from django.conf import settings

    from tradeweb.desk.orchestrators import start_heartbeat

    start_heartbeat(settings.WORKER_STATUS_HEARTBEAT_SECONDS)


@signals.worker_ready.connect
def advance_every_market_at_start(**kwargs) -> None:
    """A worker that (re)starts carries on what a killed one left: candles stored but not yet processed."""
    from tradeweb.desk.tasks import advance_every_market

    try:
        advance_every_market()
    except Exception:  # a worker must start even if the database is down; the feed's next candle advances
        import logging

        logging.getLogger(__name__).exception("could not ask for an advance of every market at start")
