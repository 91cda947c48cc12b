from django.db import migrations, models
import django.utils.timezone


def link_stored_candles(apps, schema_editor):
    """Each stored candle names the one stored before it in its market: the chain strategies follow."""
    Candle = apps.get_model("desk", "Candle")
    markets = Candle.objects.values_list("symbol", "timeframe").distinct()
    for symbol, timeframe in markets:
        previous = None
        changed = []
        for candle in Candle.objects.filter(symbol=symbol, timeframe=timeframe).order_by("time").only("id", "time"):
            candle.previous_time = previous
            previous = candle.time
            changed.append(candle)
            if len(changed) == 2000:
                Candle.objects.bulk_update(changed, ["previous_time"])
                changed = []
        Candle.objects.bulk_update(changed, ["previous_time"])


class Migration(migrations.Migration):

    dependencies = [
        ("desk", "0003_orchestrator_snapshot"),
    ]

    operations = [
        migrations.AddField(
            model_name="candle",
            name="previous_time",
            field=models.DateTimeField(blank=True, help_text="Time of the candle before it in its market.", null=True),
        ),
        migrations.AddField(
            model_name="candle",
            name="received_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="strategy",
            name="last_worker",
            field=models.CharField(
                blank=True, editable=False, help_text="The worker process that processed its last candle.", max_length=255
            ),
        ),
        migrations.RunPython(link_stored_candles, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="candle",
            constraint=models.UniqueConstraint(fields=("symbol", "timeframe", "previous_time"), name="candle_market_previous"),
        ),
    ]
