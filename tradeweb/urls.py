"""URLs of the desk, the login pages and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from tradeweb.desk import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("portfolio/", views.portfolio_table, name="portfolio_table"),
    path("strategies/<slug:strategy_id>/", views.strategy_detail, name="strategy_detail"),
    path("strategies/<slug:strategy_id>/card/", views.strategy_card, name="strategy_card"),
    path("strategies/<slug:strategy_id>/activity/", views.strategy_activity, name="strategy_activity"),
    path("strategies/<slug:strategy_id>/activate/", views.activate, name="strategy_activate"),
    path("strategies/<slug:strategy_id>/deactivate/", views.deactivate, name="strategy_deactivate"),
    path("strategies/<slug:strategy_id>/resume/", views.resume, name="strategy_resume"),
    path("strategies/<slug:strategy_id>/pnl/", views.strategy_pnl, name="strategy_pnl"),
    path("strategies/<slug:strategy_id>/pnl/live/", views.strategy_pnl_live, name="strategy_pnl_live"),
    path("strategies/<slug:strategy_id>/pnl/<str:what>.<str:kind>", views.strategy_pnl_export, name="strategy_pnl_export"),
    path("account-limits/<str:account>/resume/", views.account_resume, name="account_resume"),
    path("backtests/", views.backtest_list, name="backtest_list"),
    path("backtests/new/", views.backtest_new, name="backtest_new"),
    path("backtests/<int:run_id>/", views.backtest_detail, name="backtest_detail"),
    path("backtests/<int:run_id>/progress/", views.backtest_progress, name="backtest_progress"),
    path("backtests/<int:run_id>/cancel/", views.backtest_cancel, name="backtest_cancel"),
    path("backtests/<int:run_id>/export/<str:kind>/", views.backtest_export, name="backtest_export"),
    path("events/", views.event_list, name="event_list"),
    path("workers/", views.worker_status, name="worker_status"),
    path("workers/tables/", views.worker_status_tables, name="worker_status_tables"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
