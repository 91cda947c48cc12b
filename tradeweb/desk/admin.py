"""Admin for every desk model; a strategy's config is validated against its class before it is saved."""

from __future__ import annotations

from django.contrib import admin

from tradeweb.desk import models

# A change to any of these rebuilds the strategy's orchestrator on the next candle.
RELOADED_FIELDS = {"config", "capital", "strategy_class", "symbol", "timeframe"}


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
        if change and RELOADED_FIELDS & set(form.changed_data):
            obj.config_version += 1
        super().save_model(request, obj, form, change)


class StrategyOwnedAdmin(admin.ModelAdmin):
    """Rows written by the orchestrators: browsable and filterable by strategy, not edited by hand."""

    list_filter = ("strategy",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.Position)
class PositionAdmin(StrategyOwnedAdmin):
    list_display = ("position_id", "strategy", "symbol", "side", "quantity", "entry_price", "realized_pnl", "opened_at", "closed_at")


@admin.register(models.Order)
class OrderAdmin(StrategyOwnedAdmin):
    list_display = ("order_id", "strategy", "symbol", "intent", "position_side", "quantity", "status", "created_at")


@admin.register(models.Fill)
class FillAdmin(StrategyOwnedAdmin):
    list_display = ("order_id", "strategy", "symbol", "side", "quantity", "price", "fee", "trigger", "time")


@admin.register(models.JournalEntry)
class JournalEntryAdmin(StrategyOwnedAdmin):
    list_display = ("time", "strategy", "kind", "message")


@admin.register(models.ControlAction)
class ControlActionAdmin(StrategyOwnedAdmin):
    list_display = ("created_at", "strategy", "user", "action", "detail")


@admin.register(models.Event)
class EventAdmin(StrategyOwnedAdmin):
    list_display = ("id", "strategy_id", "sequence", "type", "symbol", "time")
    list_filter = ("type", "strategy_id")


@admin.register(models.Candle)
class CandleAdmin(StrategyOwnedAdmin):
    list_display = ("symbol", "timeframe", "time", "open", "high", "low", "close", "volume")
    list_filter = ("symbol", "timeframe")
