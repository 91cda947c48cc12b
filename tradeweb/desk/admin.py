"""Admin for every desk model: strategies are edited (their config checked against their class), markets only in
their bad-data rule, and the ledger the orchestrators and the desk's controls write is read-only for everyone."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from tradeweb.desk import config_history, models

@admin.register(models.Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ("strategy_id", "name", "strategy_class", "symbol", "timeframe", "status", "mode", "equity")
    list_filter = ("status", "mode", "strategy_class", "symbol")
    search_fields = ("strategy_id", "name")
    readonly_fields = (
        "config_version", "last_candle_time", "last_close", "last_sequence", "equity", "realized_pnl",
        "unrealized_pnl", "last_error", "created_at", "updated_at",
    )

    def get_readonly_fields(self, request, obj=None):
        # The id is set once: every owned row references it and every stored event carries it.
        # Status changes go through the desk's controls, which record who did it and tell the browsers.
        return self.readonly_fields + (("strategy_id", "status") if obj is not None else ())

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            models.ConfigVersion.objects.filter(strategy=obj, version=obj.config_version).update(user=request.user)
        elif form.changed_data:
            # Only what the form changed: a worker may have moved the row on since the page was opened.
            config_history.save_settings(obj, request.user, list(form.changed_data))

    def get_deleted_objects(self, objs, request):
        """Refuse to delete a strategy that owns ledger rows, its events included, and say that this is why."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Events name their strategy by id, not by a foreign key, so the database cannot protect them; orphaned,
        # they would also collide with the sequence of a strategy created again under the same id.
        protected = protected + stored_events(objs)
        if protected:
            # Nobody may delete ledger rows; blaming this user's permissions would suggest someone else could.
            perms_needed = set()
        return deleted, model_count, perms_needed, protected


def stored_events(strategies) -> list[str]:
    """One line per strategy that has stored events: how many, linked to them in the event list."""
    counts = (
        models.Event.objects.filter(strategy_id__in=[strategy.strategy_id for strategy in strategies])
        .values("strategy_id").annotate(count=Count("id")).order_by("strategy_id")
    )
    changelist = reverse("admin:desk_event_changelist")
    return [
        format_html(
            'Events: <a href="{}?{}">{} of strategy {}</a>',
            changelist, urlencode({"strategy_id": row["strategy_id"]}), row["count"], row["strategy_id"],
        )
        for row in counts
    ]


@admin.register(models.Market)
class MarketAdmin(admin.ModelAdmin):
    """Markets the desk takes candles for; once created, only their bad-data rule changes."""

    list_display = ("symbol", "timeframe", "max_move")
    list_filter = ("timeframe",)
    search_fields = ("symbol",)

    def get_readonly_fields(self, request, obj=None):
        # Candles and strategies name their market by symbol and timeframe; renaming it would strand them.
        return ("symbol", "timeframe") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        # Without its market, a feed's candles are rejected while strategies still trade it.
        return False


@admin.register(models.AccountLimit)
class AccountLimitAdmin(admin.ModelAdmin):
    """Loss limits across every strategy of an account; its halt is lifted from the dashboard."""

    list_display = ("account", "max_drawdown_pct", "daily_loss_pct", "halted_reason", "halted_at")
    readonly_fields = ("marks", "halted_reason", "halted_at")

    def get_readonly_fields(self, request, obj=None):
        # Its marks are of this account's strategies: renaming it would apply them to another.
        return self.readonly_fields + (("account",) if obj is not None else ())

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
        elif form.changed_data:
            # Only the limits: the marks and the halt a worker wrote since the page was opened stay.
            obj.save(update_fields=form.changed_data)


@admin.register(models.Slot)
class SlotAdmin(admin.ModelAdmin):
    """Slots (account + symbol): made exclusive here, so that switching one strategy on switches the other out."""

    list_display = ("account", "symbol", "exclusive")
    list_filter = ("exclusive", "account")
    search_fields = ("account", "symbol")

    def get_readonly_fields(self, request, obj=None):
        # Strategies name their slot by account and symbol; renaming it would strand them.
        return ("account", "symbol") if obj is not None else ()

    def has_delete_permission(self, request, obj=None):
        return False


class LedgerAdmin(admin.ModelAdmin):
    """The desk's ledger: browsed and filtered, never added, edited or deleted by hand, superusers included.

    A correction, if one is ever needed, is a new row written by the desk, so history is never rewritten.
    """

    list_filter = ("strategy",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Also removes the "delete selected" action from the list, which needs this permission.
        return False


@admin.register(models.Position)
class PositionAdmin(LedgerAdmin):
    list_display = ("position_id", "strategy", "symbol", "side", "quantity", "entry_price", "realized_pnl", "opened_at", "closed_at")


@admin.register(models.Order)
class OrderAdmin(LedgerAdmin):
    list_display = ("order_id", "strategy", "symbol", "intent", "position_side", "quantity", "status", "created_at")


@admin.register(models.Fill)
class FillAdmin(LedgerAdmin):
    list_display = ("order_id", "strategy", "symbol", "side", "quantity", "price", "fee", "trigger", "time")


@admin.register(models.JournalEntry)
class JournalEntryAdmin(LedgerAdmin):
    list_display = ("time", "strategy", "kind", "message")


@admin.register(models.ControlAction)
class ControlActionAdmin(LedgerAdmin):
    list_display = ("created_at", "strategy", "user", "action", "detail")


@admin.register(models.Event)
class EventAdmin(LedgerAdmin):
    list_display = ("id", "strategy_id", "sequence", "type", "symbol", "time")
    list_filter = ("type", "strategy_id")


@admin.register(models.Candle)
class CandleAdmin(LedgerAdmin):
    list_display = ("symbol", "timeframe", "time", "open", "high", "low", "close", "volume")
    list_filter = ("symbol", "timeframe")



class BacktestStrategyResultInline(admin.TabularInline):
    model = models.BacktestStrategyResult
    fields = ("strategy_id", "trades")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="trades")
    def trades(self, obj):
        return len(obj.result.get("trades", []))

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    """Backtest runs are studies: browsed, and deleted when no longer wanted, never written by hand (they are
    started from the desk's form or `manage.py backtest`, and their results come from the engine)."""

    list_display = ("id", "status", "created_by", "created_at", "candles_done", "candles_total", "results")
    list_filter = ("status",)
    inlines = (BacktestStrategyResultInline,)
    exclude = ("portfolio",)

    @admin.display(description="results")
    def results(self, obj):
        if obj.status != models.BacktestRun.Status.DONE:
            return "-"
        return format_html('<a href="{}">results page</a>', reverse("backtest_detail", args=[obj.pk]))

    readonly_fields = ("results",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
