"""Pickle streams without their frame headers (state layer).

Protocol 4 and later cut a stream into ~64 KiB frames, each headed by its length. Those are
read-ahead hints only, and they make an insert or delete early in a value change every later
header, so every later chunk. The stream is stored without them; unpickling reads it as well.
"""

from __future__ import annotations

import pickle
import struct

__all__ = ["unframed"]

_FRAME_OPCODE = pickle.FRAME[0]
_FRAME_HEADER = struct.Struct("<Q")
_FRAME_SIZE_MIN = 4  # the picklers leave shorter runs of opcodes unframed
# Opcodes the picklers write outside frames (a payload of a frame's size or more), with the
# width of their length field.
_UNFRAMED_LENGTHS = {
    pickle.SHORT_BINBYTES[0]: 1, pickle.SHORT_BINUNICODE[0]: 1,
    pickle.BINBYTES[0]: 4, pickle.BINUNICODE[0]: 4,
    pickle.BINBYTES8[0]: 8, pickle.BINUNICODE8[0]: 8, pickle.BYTEARRAY8[0]: 8,
}


def unframed(stream: bytes) -> bytes:
    """Return a protocol 4+ stream without its FRAME opcodes (the stream unchanged if odd)."""
    if stream[:1] != pickle.PROTO or len(stream) < 2:
        return stream
    view = memoryview(stream)
    parts = [view[:2]]
    position = 2
    while position < len(stream):
        opcode = stream[position]
        if opcode == _FRAME_OPCODE:
            (size,) = _FRAME_HEADER.unpack_from(stream, position + 1)
            start = position + 1 + _FRAME_HEADER.size
            parts.append(view[start : start + size])
            position = start + size
            continue
        width = _UNFRAMED_LENGTHS.get(opcode)
        if width is None:
            if len(stream) - position >= _FRAME_SIZE_MIN:
                return stream
            # what followed the last big payload, too short for a frame of its own
            parts.append(view[position:])
            position = len(stream)
            continue
        size = int.from_bytes(view[position + 1 : position + 1 + width], "little")
        end = position + 1 + width + size
        parts.append(view[position:end])
        position = end
    return b"".join(parts) if position == len(stream) else stream
