"""Watchkeeper: monitoring for ML models and LLM applications in production.

``import watchkeeper`` loads only the SDK (standard library only); the server lives in
subpackages that are imported explicitly.
"""

from watchkeeper._version import __version__
from watchkeeper.sdk import (
    Call,
    HTTPTransport,
    InMemoryTransport,
    Monitor,
    SendResult,
    Transport,
)

__all__ = [
    "Call",
    "HTTPTransport",
    "InMemoryTransport",
    "Monitor",
    "SendResult",
    "Transport",
    "__version__",
]
