"""Websocket URLs."""

from django.urls import path

from tradeweb.desk.consumers import EventConsumer

websocket_urlpatterns = [path("ws/events/", EventConsumer.as_asgi())]
