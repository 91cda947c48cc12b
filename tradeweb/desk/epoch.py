"""Times as whole microseconds since 1970 (UTC), computed by the database: how the P&L page's kept history reads its
tens of thousands of candle and fill times. The database driver turns each stored time into a datetime in Python, which
costs more than all the rest of deriving the history; an integer costs next to nothing, and converts back exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from django.db.models import BigIntegerField, Func

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)
MICROSECONDS_A_SECOND = 1_000_000
MICROSECONDS_A_DAY = 86_400 * MICROSECONDS_A_SECOND


class EpochMicroseconds(Func):
    """A datetime column as whole microseconds since 1970, UTC."""

    arity = 1
    output_field = BigIntegerField()
    # The database returns an integer already: no converter to call on every row.
    convert_value = staticmethod(Func._convert_value_noop)

    def as_postgresql(self, compiler, connection, **extra_context):
        # EXTRACT gives an exact numeric, microseconds included.
        return self.as_sql(compiler, connection, template="(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint",
                           **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        # SQLite holds the time as UTC text, 'YYYY-MM-DD HH:MM:SS' then '.ffffff' unless the microseconds are 0.
        # strftime would round the fraction into the seconds, so it reads the first 19 characters only; '%%%%s' is
        # its '%s' once Django has formatted the template and the query.
        template = ("(CAST(strftime('%%%%s', substr(%(expressions)s, 1, 19)) AS INTEGER) * 1000000"
                    " + CAST(substr(%(expressions)s, 21) AS INTEGER))")
        return self.as_sql(compiler, connection, template=template, **extra_context)


def microseconds(time: datetime) -> int:
    """A UTC-aware datetime as whole microseconds since 1970."""
    return (time - EPOCH) // ONE_MICROSECOND


def moment(microseconds: int) -> datetime:
    """Whole microseconds since 1970 as a UTC datetime."""
    return EPOCH + timedelta(microseconds=microseconds)
