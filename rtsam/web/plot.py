"""The tumour trajectory as a small inline SVG (offset from the reference phase per R, A, S axis)."""

from __future__ import annotations

import numpy as np

AXES = (("R", "#e53935"), ("A", "#43a047"), ("S", "#1e88e5"))


def table_column(table, name: str) -> np.ndarray:
    column = table.GetTable().GetColumnByName(name)
    return np.array([column.GetValue(i) for i in range(column.GetNumberOfTuples())], float)


def motion_svg(table, width: int = 300, height: int = 160, pad: int = 28) -> str:
    """Lines of the centroid offset (mm) against phase, read from ITV4DCT's motion table node."""
    x = table_column(table, "phase")
    series = {axis: table_column(table, f"offset {axis} (mm)") for axis, _ in AXES}
    values = np.concatenate([v[np.isfinite(v)] for v in series.values()] + [np.zeros(1)])
    low, high = float(values.min()), float(values.max())
    high = high if high - low > 1e-6 else low + 1.0
    span_x = float(x.max() - x.min()) or 1.0

    def point(px: float, py: float) -> str:
        sx = pad + (px - x.min()) / span_x * (width - 2 * pad)
        sy = height - pad - (py - low) / (high - low) * (height - 2 * pad)
        return f"{sx:.1f},{sy:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="10">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{pad}" y="12">offset from reference phase (mm): {low:.1f} .. {high:.1f}</text>',
             f'<text x="{width // 2}" y="{height - 6}">phase</text>']
    for n, (axis, color) in enumerate(AXES):
        points = " ".join(point(px, py) for px, py in zip(x, series[axis]) if np.isfinite(py))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{width - pad + 4}" y="{30 + 12 * n}" fill="{color}">{axis}</text>')
    parts.append("</svg>")
    return "".join(parts)
