"""Several calls made at the same moment, each in a thread of its own with its own database connection."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

from django.db import connection

T = TypeVar("T")


def at_once(calls: list[Callable[[], T]], timeout: float = 30) -> list[T | BaseException]:
    """Start every call together (a barrier releases them at once); each one's result, or what it raised, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: dict[int, T | BaseException] = {}

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(10)
            outcomes[index] = call()
        except BaseException as error:  # returned to the test, which says whether it may fail
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return [outcomes.get(index, TimeoutError(f"call {index} did not end within {timeout} s")) for index in range(len(calls))]
