"""Helpers for testing code instrumented with Watchkeeper.

``Monitor("m", transport=InMemoryTransport())`` records batches in memory; after
``monitor.flush()`` read ``transport.events`` and ``transport.actuals``.
"""

from watchkeeper.sdk.transport import InMemoryTransport

__all__ = ["InMemoryTransport"]
