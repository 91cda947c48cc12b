"""Settings of the worker processes the scenario tests start (DJANGO_SETTINGS_MODULE): the desk's own,
and strategies that exist only for tests, so that a strategy with a bug runs in a real worker."""

from strategies import STRATEGIES
from tests.failing_strategy import FailingSma
from tradeweb.settings import *  # noqa: F403

STRATEGIES[FailingSma.name] = FailingSma
