"""The Watchkeeper SDK: log predictions and ground truth from inside a model server.

Standard library only. See :class:`Monitor`.
"""

from watchkeeper.sdk.monitor import Monitor
from watchkeeper.sdk.tracking import Call
from watchkeeper.sdk.transport import HTTPTransport, InMemoryTransport, SendResult, Transport

__all__ = ["Call", "HTTPTransport", "InMemoryTransport", "Monitor", "SendResult", "Transport"]
