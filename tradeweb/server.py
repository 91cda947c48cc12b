"""Daphne bounding what it holds for each websocket client: `python -m tradeweb.server` takes `daphne`'s arguments.

Plain Daphne buffers without bound in both directions. Here, per connection, at most
WEBSOCKET_MAX_BUFFER_BYTES (plus the message in hand) wait on the server:
- unsent, for a client that stops reading: past the limit the client is dropped;
- unhandled, from a client that sends faster than the application handles: past the limit the server stops
  reading from it until the application has caught up, so TCP slows the client down.
An incoming message may be at most 1 MiB (--websocket-max-message-size and --websocket-max-frame-size change
it); a bigger one, or any other protocol violation, gets a close frame (1009 for the size) instead of a dropped
TCP connection.
"""

from __future__ import annotations

import daphne.server  # isort:skip  (installs Twisted's asyncio reactor; it must come before anything else Twisted)

import logging
import os
import sys

from daphne.cli import CommandLineInterface as DaphneCommandLineInterface
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import reactor
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

# Named, not __name__: run with -m, this module is __main__.
log = logging.getLogger("tradeweb.server")

# Daphne's own default, stated here because the README promises it. Raising it makes every message the rate
# limit lets through dearer: a client sending 10 MB frames at 19 a second kept Daphne 57% busy, against 7% at 1 MB.
MAX_INCOMING_MESSAGE_BYTES = 1024 * 1024
# How often a connection that stopped reading checks whether the application has caught up.
CATCH_UP_POLL_SECONDS = 0.02


@implementer(IPushProducer)
class UnreadDataLimit:
    """The producer registered on a websocket's transport. Twisted pauses a producer when the transport's send
    buffer outgrows its bufferSize; for a websocket that means the client stopped reading, so this drops it."""

    def __init__(self, protocol: BoundedWebSocketProtocol, limit: int) -> None:
        self.protocol = protocol
        self.limit = limit
        self.tripped = False

    def pauseProducing(self) -> None:
        """More than `limit` bytes wait for the client: abort the connection, dropping them."""
        # Twisted calls this on every write while the buffer stays full; one abort is enough.
        if self.tripped:
            return
        self.tripped = True
        log.warning(
            "dropping websocket client %s: more than %d bytes sent to it are unread",
            self.protocol.client_addr, self.limit,
        )
        self.protocol.transport.abortConnection()

    def resumeProducing(self) -> None:
        """Nothing to resume: the websocket writes whenever it has a message."""

    def stopProducing(self) -> None:
        """Nothing to stop: the connection is going away."""


class BoundedWebSocketProtocol(WebSocketProtocol):
    """Daphne's websocket protocol holding at most WEBSOCKET_MAX_BUFFER_BYTES for its client in each direction."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.limit = settings.WEBSOCKET_MAX_BUFFER_BYTES
        self.unhandled_bytes = 0
        self.reading_paused = False
        # Daphne's HTTP channel registered itself as the transport's producer and stays registered after it
        # hands the upgraded connection over; a transport takes one producer, so it has to go first.
        self.transport.unregisterProducer()
        # bufferSize is where Twisted pauses the producer; on a TCP transport it is also the most read at once.
        self.transport.bufferSize = self.limit
        self.transport.registerProducer(UnreadDataLimit(self, self.limit), streaming=True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        # Once the server has sent its close frame the application is done with this client; the rest of
        # what it sent is dropped here rather than queued.
        if self.state != self.STATE_OPEN:
            return
        # Daphne's queue to the application is unbounded. Count what went in since it was last seen empty,
        # and past the limit stop reading, so that the client waits instead of the server's memory growing.
        if self.application_queue.qsize() == 0:
            self.unhandled_bytes = 0
        self.unhandled_bytes += len(payload)
        super().onMessage(payload, isBinary)
        if self.unhandled_bytes > self.limit and not self.reading_paused:
            self.reading_paused = True
            self.transport.pauseProducing()
            reactor.callLater(CATCH_UP_POLL_SECONDS, self.resume_reading_once_handled)

    def resume_reading_once_handled(self) -> None:
        """Read from the client again once the application has taken everything it sent."""
        if self.state == self.STATE_CLOSED:
            return
        if self.application_queue.qsize() > 0:
            reactor.callLater(CATCH_UP_POLL_SECONDS, self.resume_reading_once_handled)
            return
        self.unhandled_bytes = 0
        self.reading_paused = False
        self.transport.resumeProducing()


class Server(daphne.server.Server):
    """Daphne's server whose websocket factory builds BoundedWebSocketProtocol and sends close frames on failure."""

    def run(self) -> None:
        # Daphne builds its websocket factory inside run() and calls ready_callable right after, before the
        # reactor starts: the one moment to change the factory before any connection uses it.
        ready_callable = self.ready_callable

        def bound_websockets() -> None:
            self.ws_factory.protocol = BoundedWebSocketProtocol
            self.ws_factory.setProtocolOptions(failByDrop=False)
            if ready_callable is not None:
                ready_callable()

        self.ready_callable = bound_websockets
        super().run()


class CommandLineInterface(DaphneCommandLineInterface):
    """`daphne`'s command line, serving with Server."""

    server_class = Server

    def __init__(self) -> None:
        super().__init__()
        self.parser.set_defaults(
            websocket_max_message_size=MAX_INCOMING_MESSAGE_BYTES,
            websocket_max_frame_size=MAX_INCOMING_MESSAGE_BYTES,
        )


def main(argv: list[str] | None = None) -> None:
    """Run the server with `daphne`'s arguments, e.g. `-b 127.0.0.1 -p 8000 tradeweb.asgi:application`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeweb.settings")
    # Daphne serves each request in a thread of its own: its database connections come from a pool (settings).
    os.environ.setdefault("DATABASE_POOL", "1")
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
