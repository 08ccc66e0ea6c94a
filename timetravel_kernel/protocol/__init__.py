"""Protocol layer: comm protocol v1 messages and the handler that answers them."""

from timetravel_kernel.protocol.handler import (
    HistorySource,
    ProtocolHandler,
    Response,
    ServedTimeline,
)
from timetravel_kernel.protocol.messages import (
    COMM_TARGET,
    ERROR_CODES,
    EVENTS,
    OPS,
    PROTOCOL_VERSION,
)
from timetravel_kernel.protocol.requests import parse_request

__all__ = [
    "COMM_TARGET",
    "ERROR_CODES",
    "EVENTS",
    "OPS",
    "PROTOCOL_VERSION",
    "HistorySource",
    "ProtocolHandler",
    "Response",
    "ServedTimeline",
    "parse_request",
]
