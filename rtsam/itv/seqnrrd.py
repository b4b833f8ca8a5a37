"""Slicer volume sequence files (``.seq.nrrd``): a 4D NRRD with one ``list`` axis of phases.

Slicer writes the list axis first (older files) or last (newer files); both are read. We
write it first with ``axis 0 index values`` holding the phase values, as Slicer expects.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.files import write_atomically
from ..volume import Volume

NRRD_TYPES = {
    "signed char": "i1", "int8": "i1", "int8_t": "i1", "uchar": "u1", "unsigned char": "u1", "uint8": "u1",
    "uint8_t": "u1", "short": "i2", "short int": "i2", "signed short": "i2", "int16": "i2", "int16_t": "i2",
    "ushort": "u2", "unsigned short": "u2", "uint16": "u2", "uint16_t": "u2", "int": "i4", "signed int": "i4",
    "int32": "i4", "int32_t": "i4", "uint": "u4", "unsigned int": "u4", "uint32": "u4", "uint32_t": "u4",
    "float": "f4", "double": "f8", "longlong": "i8", "int64": "i8", "ulonglong": "u8", "uint64": "u8",
}
WRITE_TYPES = {"i1": "int8", "u1": "uint8", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
               "f4": "float", "f8": "double", "i8": "int64", "u8": "uint64"}
SPACES = {"left-posterior-superior": np.eye(3), "right-anterior-superior": np.diag([-1.0, -1.0, 1.0])}


def read_seq_nrrd(path: str | Path) -> tuple[list[Volume], list[float]]:
    """The phases of a 4D sequence NRRD and their index values (0, 1, ... when absent)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    raw = path.read_bytes()
    header, data = _split_header(raw, path)
    fields, keys = _parse_header(header, path)
    sizes = [int(v) for v in fields.get("sizes", "").split()]
    if len(sizes) != 4:
        raise InputError(f"expected a 4D NRRD (3 spatial axes + a list of phases), got sizes {sizes}", path)
    list_axis, directions = _axes(fields, path)
    dtype = _dtype(fields, path)
    array = _decode(data, fields, dtype, int(np.prod(sizes)), path).reshape(sizes[::-1])
    array = np.moveaxis(array, 3 - list_axis, 0)  # numpy axes are reversed NRRD axes
    spatial = [s for a, s in enumerate(sizes) if a != list_axis]
    spacing = [float(np.linalg.norm(d)) for d in directions]
    direction = np.column_stack([d / s for d, s in zip(directions, spacing)])
    to_lps = SPACES[fields.get("space", "left-posterior-superior")]
    origin = to_lps @ _vector(fields.get("space origin", "(0,0,0)"), path)
    direction = to_lps @ direction
    values = _index_values(keys, list_axis, array.shape[0], path)
    volumes = [
        Volume(np.ascontiguousarray(a), tuple(spacing), tuple(origin), direction, metadata={"path": str(path)})
        for a in array
    ]
    if any(v.array.shape != tuple(spatial[::-1]) for v in volumes):
        raise InputError("phase volumes do not match the NRRD sizes", path)
    return volumes, values


def write_seq_nrrd(volumes: list[Volume], path: str | Path, values: list[float] | None = None) -> Path:
    """Write phases sharing one grid as a gzip-compressed Slicer ``.seq.nrrd`` (atomic rename)."""
    path = Path(path)
    if len(volumes) < 1 or any(not volumes[0].same_grid(v) for v in volumes):
        raise InputError("a sequence file needs phases sharing one grid", path)
    values = list(range(len(volumes))) if values is None else list(values)
    ref = volumes[0]
    array = np.stack([v.array for v in volumes], axis=-1)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    axes = ref.direction @ np.diag(ref.spacing)
    lines = [
        "NRRD0004", f"type: {WRITE_TYPES[array.dtype.str[1:]]}", "dimension: 4", "space: left-posterior-superior",
        f"sizes: {len(volumes)} {' '.join(str(n) for n in ref.size_ijk)}",
        "space directions: none " + " ".join(_fmt_vector(axes[:, a]) for a in range(3)),
        "kinds: list domain domain domain", 'labels: "phase" "" "" ""', "endian: little", "encoding: gzip",
        f"space origin: {_fmt_vector(ref.origin)}", "axis 0 index type:=numeric",
        "axis 0 index values:=" + " ".join(f"{float(v):.10g}" for v in values),
        "DataNodeClassName:=vtkMRMLScalarVolumeNode",
    ]
    payload = ("\n".join(lines) + "\n\n").encode() + gzip.compress(np.ascontiguousarray(array).tobytes(), 1)
    return write_atomically(path, lambda temp: Path(temp).write_bytes(payload))


def _split_header(raw: bytes, path: Path) -> tuple[str, bytes]:
    if not raw.startswith(b"NRRD"):
        raise InputError("not a NRRD file (no NRRD magic)", path)
    end = raw.find(b"\n\n")
    if end < 0:
        raise InputError("NRRD header has no end (blank line missing)", path)
    return raw[:end].decode("latin-1"), raw[end + 2:]


def _parse_header(header: str, path: Path) -> tuple[dict[str, str], dict[str, str]]:
    fields, keys = {}, {}
    for line in header.splitlines()[1:]:
        if not line or line.startswith("#"):
            continue
        if ":=" in line:
            key, _, value = line.partition(":=")
            keys[key.strip()] = value.strip()
        elif ": " in line:
            key, _, value = line.partition(": ")
            fields[key.strip().lower()] = value.strip()
    if "data file" in fields or "datafile" in fields:
        raise InputError("detached NRRD data files are not supported; save as a single .seq.nrrd", path)
    return fields, keys


def _axes(fields: dict, path: Path) -> tuple[int, list[np.ndarray]]:
    parts = re.findall(r"none|\([^)]*\)", fields.get("space directions", ""))
    if len(parts) != 4 or sum(p == "none" for p in parts) != 1:
        raise InputError("4D NRRD needs 'space directions' with 3 vectors and one 'none' (the phase axis)", path)
    list_axis = parts.index("none")
    if list_axis not in (0, 3):
        raise InputError(f"the phase (list) axis must be first or last, found axis {list_axis}", path)
    return list_axis, [_vector(p, path) for p in parts if p != "none"]


def _vector(text: str, path: Path) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.strip().strip("()").split(",")])
    except ValueError:
        raise InputError(f"cannot parse NRRD vector {text!r}", path) from None
    if values.shape != (3,):
        raise InputError(f"NRRD vector {text!r} needs 3 values", path)
    return values


def _dtype(fields: dict, path: Path) -> np.dtype:
    code = NRRD_TYPES.get(fields.get("type", "").lower())
    if code is None:
        raise InputError(f"unsupported NRRD type {fields.get('type')!r}", path)
    order = ">" if fields.get("endian", "little") == "big" else "<"
    return np.dtype(order + code if code[1] != "1" else code)


def _decode(data: bytes, fields: dict, dtype: np.dtype, count: int, path: Path) -> np.ndarray:
    encoding = fields.get("encoding", "raw").lower()
    if encoding in ("gzip", "gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputError(f"cannot decompress NRRD data ({error})", path) from None
    elif encoding != "raw":
        raise InputError(f"unsupported NRRD encoding {encoding!r} (use raw or gzip)", path)
    if len(data) < count * dtype.itemsize:
        raise InputError(f"NRRD data is truncated ({len(data)} of {count * dtype.itemsize} bytes)", path)
    return np.frombuffer(data[-count * dtype.itemsize:], dtype=dtype).astype(dtype.newbyteorder("="))


def _index_values(keys: dict, list_axis: int, count: int, path: Path) -> list[float]:
    text = keys.get(f"axis {list_axis} index values")
    if text is None:
        return [float(i) for i in range(count)]
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise InputError(f"phase index values must be numbers, got {text!r}", path) from None
    if len(values) != count:
        raise InputError(f"{len(values)} phase index values for {count} phases", path)
    return values


def _fmt_vector(v) -> str:
    return "(" + ",".join(f"{float(x):.17g}" for x in v) + ")"
