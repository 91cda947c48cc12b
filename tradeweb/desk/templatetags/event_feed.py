"""Template filters of the event feed: an event's sentence, for the row partial the page and the socket share."""

from __future__ import annotations

from typing import Any, Mapping

from django import template

from tradeweb.desk.event_sentences import Sentence, sentence

register = template.Library()


@register.filter(name="sentence")
def event_sentence(event: Mapping[str, Any]) -> Sentence:
    """The event (a wire mapping) as the feed words it."""
    return sentence(event)
