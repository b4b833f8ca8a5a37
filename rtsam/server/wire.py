"""Wire format for volumes between client and server: one binary frame.

A frame is ``MAGIC``, a little-endian uint32 header length, a UTF-8 JSON header, then the
zlib-compressed raw bytes of each array in header order. The header gives every array's
dtype, shape, compressed size and (for volumes) its LPS geometry, plus free ``meta``.
Decoding checks sizes before and after decompression, so a small upload can never expand
into more memory than the configured limit.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..engines.base import Click, Prompt
from ..errors import InputError
from ..volume import Volume

MAGIC = b"RTSAM-FRAME1\n"
CONTENT_TYPE = "application/x-rtsam-frame"
ALLOWED_DTYPES = {"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<f4", "<f8", "<i8"}
MAX_HEADER_BYTES = 1 << 20


@dataclass
class Frame:
    """Named arrays (with optional geometry) plus JSON metadata."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    geometry: dict[str, dict] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def volume(self, name: str) -> Volume:
        if name not in self.arrays or name not in self.geometry:
            raise InputError(f"frame has no volume '{name}' (has {sorted(self.arrays)})")
        return volume_from_geometry(self.arrays[name], self.geometry[name])


def geometry_of(volume: Volume) -> dict:
    return {
        "spacing": list(volume.spacing),
        "origin": list(volume.origin),
        "direction": np.asarray(volume.direction, dtype=float).ravel().tolist(),
        "frame_of_reference_uid": volume.frame_of_reference_uid,
    }


def volume_from_geometry(array: np.ndarray, geometry: dict) -> Volume:
    try:
        direction = np.asarray(geometry["direction"], dtype=float)
        spacing, origin = geometry["spacing"], geometry["origin"]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"volume geometry needs spacing, origin and direction: {error}") from None
    if direction.size != 9 or len(spacing) != 3 or len(origin) != 3:
        raise InputError("volume geometry needs 3 spacings, 3 origin coordinates and a 9-element direction")
    if not np.all(np.isfinite(direction)) or abs(abs(np.linalg.det(direction.reshape(3, 3))) - 1) > 1e-3:
        raise InputError(f"volume direction must be a rotation matrix, got {direction.tolist()}")
    return Volume(array, spacing=tuple(spacing), origin=tuple(origin), direction=direction.reshape(3, 3),
                  frame_of_reference_uid=geometry.get("frame_of_reference_uid"))


def prompt_to_dict(prompt: Prompt) -> dict:
    """The JSON form of a prompt (the ``PromptIn`` schema); presence only when set, so servers that
    predate it still take prompts that leave it to the engine."""
    box = None if prompt.box_lps is None else np.asarray(prompt.box_lps, dtype=float).tolist()
    return {"task": prompt.task, "patient": prompt.patient, "box_lps": box, "box_fitted": prompt.box_fitted,
            "clicks": [{"lps": list(c.lps), "positive": c.positive} for c in prompt.clicks],
            **({} if prompt.presence is None else {"presence": prompt.presence})}


def prompt_from_dict(data: dict) -> Prompt:
    return Prompt(task=data.get("task"), patient=data.get("patient"), box_lps=data.get("box_lps"),
                  box_fitted=bool(data.get("box_fitted", False)), presence=data.get("presence"),
                  clicks=[Click(tuple(c["lps"]), bool(c.get("positive", True))) for c in data.get("clicks", [])])


def encode(frame: Frame, level: int = 1) -> bytes:
    """Serialise ``frame``; ``level`` is the zlib level (1: fast, enough for masks and CT)."""
    entries, payloads = [], []
    for name, array in frame.arrays.items():
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        array = array.astype(dtype, copy=False)
        if dtype.str not in ALLOWED_DTYPES:
            raise InputError(f"array '{name}' has unsupported dtype {array.dtype}")
        payload = zlib.compress(array.tobytes(), level)
        entry = {"name": name, "dtype": dtype.str, "shape": list(array.shape), "compressed_bytes": len(payload)}
        if name in frame.geometry:
            entry["geometry"] = frame.geometry[name]
        entries.append(entry)
        payloads.append(payload)
    header = json.dumps({"arrays": entries, "meta": frame.meta}).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *payloads])


def encode_volumes(volumes: dict[str, Volume], meta: dict | None = None) -> bytes:
    return encode(Frame({n: v.array for n, v in volumes.items()}, {n: geometry_of(v) for n, v in volumes.items()},
                        meta or {}))


def decode(data: bytes, max_array_bytes: int = 1 << 31) -> Frame:
    """Parse a frame; raise ``InputError`` with a clear message on any malformation."""
    header, offset = _read_header(data)
    frame = Frame(meta=header.get("meta") or {})
    for entry in header.get("arrays", []):
        name, dtype, shape, nbytes = _check_entry(entry, max_array_bytes)
        size = entry["compressed_bytes"]
        if offset + size > len(data):
            raise InputError(f"frame is truncated: array '{name}' needs {size} bytes, {len(data) - offset} left")
        raw = _inflate(data[offset:offset + size], nbytes, name)
        offset += size
        frame.arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if "geometry" in entry:
            frame.geometry[name] = entry["geometry"]
    if offset != len(data):
        raise InputError(f"frame has {len(data) - offset} unexpected trailing bytes")
    return frame


def _read_header(data: bytes) -> tuple[dict, int]:
    if not data.startswith(MAGIC):
        raise InputError(f"not an rtsam frame (expected content type {CONTENT_TYPE} starting with {MAGIC!r})")
    start = len(MAGIC) + 4
    if len(data) < start:
        raise InputError("frame is truncated before its header")
    (length,) = struct.unpack("<I", data[len(MAGIC):start])
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise InputError(f"frame header length {length} is invalid for a {len(data)}-byte frame")
    try:
        header = json.loads(data[start:start + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"frame header is not valid JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise InputError("frame header must be a JSON object with an 'arrays' list")
    return header, start + length


def _check_entry(entry, max_array_bytes: int) -> tuple[str, np.dtype, tuple, int]:
    try:
        name, dtype_str, shape = str(entry["name"]), str(entry["dtype"]), tuple(int(n) for n in entry["shape"])
        int(entry["compressed_bytes"])
    except (KeyError, TypeError, ValueError):
        raise InputError("each frame array needs name, dtype, shape and compressed_bytes") from None
    if dtype_str not in ALLOWED_DTYPES:
        raise InputError(f"array '{name}': dtype {dtype_str} is not one of {sorted(ALLOWED_DTYPES)}")
    if any(n < 0 for n in shape) or len(shape) > 4:
        raise InputError(f"array '{name}': invalid shape {list(shape)}")
    dtype = np.dtype(dtype_str)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > max_array_bytes:
        raise InputError(f"array '{name}' of shape {list(shape)} is {nbytes / 2**20:.0f} MiB decompressed, "
                         f"over the server limit of {max_array_bytes / 2**20:.0f} MiB")
    return name, dtype, shape, nbytes


def _inflate(payload: bytes, nbytes: int, name: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, nbytes + 1)
    except zlib.error as error:
        raise InputError(f"array '{name}' is not valid zlib data: {error}") from None
    if len(raw) != nbytes or inflater.unconsumed_tail or not inflater.eof:
        raise InputError(f"array '{name}' decompresses to a different size than its dtype and shape say "
                         f"(expected {nbytes} bytes)")
    return raw
