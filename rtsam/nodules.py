"""Small lung nodules inserted into a real chest CT: check cases of the kind the four labelled
lesions lack (issue 17's held-out nodule: about 1.4 mL on 3 slices of 5 mm, in aerated lung).

Each nodule is built from real parts: a site deep in the CT's aerated lung, far from its own
lesion; an irregular ellipsoid there (radii along the image axes, a smooth random bump on the
surface); and the voxels of a real tumour (the donor label's core) blended in by each voxel's
partial volume (the ellipsoid supersampled per voxel), so a thick slice through the nodule's end
gets a faint rim as a real scan does. The label is the voxels at least half inside. What is
synthetic: the shape, and the tissue's place (the donor's texture is real).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .errors import InputError
from .volume import Volume

AERATED_HU = -500.0  # lung parenchyma is below this; soft tissue and vessels are above
BODY_HU = -400.0
SUPERSAMPLE = np.array([5, 3, 3])  # sub-samples per voxel along k, j, i (thick slices need more)
EDGE_BLUR_PX = 0.6  # in-plane Gaussian sigma of the nodule's edge (a CT's point spread)
RADII_MM = ((7.0, 10.0), (4.0, 7.0), (4.0, 7.0))  # ranges along k, j, i: 0.5-3 mL
BUMP = 0.12  # amplitude of each surface harmonic (relative radius)
DEPTH_MM = 10.0  # site at least this deep in aerated lung
GAP_MM = 40.0  # site at least this far from the donor lesion
BOX_MARGIN_MM = 10.0  # room left above and below the nodule for the benchmark's loosest box


class Nodule(NamedTuple):
    image: Volume
    label: Volume
    site_lps: np.ndarray  # the ellipsoid's centre
    radii_mm: tuple[float, float, float]  # along the image's k, j, i axes
    volume_ml: float  # of the label


def aerated_lung(image: Volume) -> np.ndarray:
    """Air inside the body outline, per axial slice: the lungs and airways."""
    body = np.stack([ndimage.binary_fill_holes(s) for s in image.array > BODY_HU])
    return body & (image.array < AERATED_HU)


def nodule_sites(image: Volume, donor_label: Volume, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` voxel sites (k, j, i), spread apart (farthest-point order from a random first), each
    DEPTH_MM inside aerated lung, GAP_MM from the donor lesion, with room in z for a loose box."""
    spacing = np.asarray(image.spacing, dtype=float)[::-1]
    depth = ndimage.distance_transform_edt(aerated_lung(image), sampling=spacing)
    gap = ndimage.distance_transform_edt(donor_label.array == 0, sampling=spacing)
    room = int(np.ceil((RADII_MM[0][1] + BOX_MARGIN_MM) / spacing[0])) + 1
    allowed = (depth > DEPTH_MM) & (gap > GAP_MM)
    allowed[:room], allowed[len(allowed) - room:] = False, False
    candidates = np.argwhere(allowed)
    if len(candidates) == 0:
        raise InputError(f"no site {DEPTH_MM:g} mm deep in aerated lung (HU < {AERATED_HU:g}), "
                         f"{GAP_MM:g} mm from the lesion and {room} slices from the ends: is this a chest CT?",
                         image.metadata.get("path"))
    sites = [candidates[rng.integers(len(candidates))]]
    nearest = np.full(len(candidates), np.inf)
    for _ in range(count - 1):
        nearest = np.minimum(nearest, np.linalg.norm((candidates - sites[-1]) * spacing, axis=1))
        sites.append(candidates[np.argmax(nearest)])
    return np.array(sites)


def partial_volume(radii_mm, spacing_kji: np.ndarray, offset_mm: np.ndarray, rng: np.random.Generator):
    """(fraction of each voxel inside the nodule, block half-size in voxels): the block is centred on
    a voxel, the nodule's centre ``offset_mm`` from it."""
    half = np.ceil(np.asarray(radii_mm) * (1 + 3 * BUMP) / spacing_kji).astype(int) + 1
    axes = [((np.arange(-h * s, (h + 1) * s) + 0.5) / s - 0.5) * d - o
            for h, s, d, o in zip(half, SUPERSAMPLE, spacing_kji, offset_mm)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    relative = np.sqrt((z / radii_mm[0]) ** 2 + (y / radii_mm[1]) ** 2 + (x / radii_mm[2]) ** 2)
    polar = np.arccos(np.clip(z / np.maximum(np.sqrt(z * z + y * y + x * x), 1e-9), -1.0, 1.0))
    azimuth = np.arctan2(y, x)
    bumps = sum(rng.uniform(-BUMP, BUMP) * np.cos(m * azimuth + rng.uniform(0, 2 * np.pi)) * np.sin(polar) ** m
                for m in (2, 3, 4))
    inside = (relative <= 1 + bumps).astype(np.float32)
    blocks = inside.reshape(2 * half[0] + 1, SUPERSAMPLE[0], 2 * half[1] + 1, SUPERSAMPLE[1],
                            2 * half[2] + 1, SUPERSAMPLE[2])
    return ndimage.gaussian_filter(blocks.mean(axis=(1, 3, 5)), (0, EDGE_BLUR_PX, EDGE_BLUR_PX)), half


def lesion_core(donor_label: Volume) -> np.ndarray:
    """The donor lesion's core (eroded 2 voxels; the whole lesion when nothing is left)."""
    core = ndimage.binary_erosion(donor_label.array > 0, iterations=2)
    return core if core.any() else donor_label.array > 0


def donor_tissue(donor: Volume, core: np.ndarray, half: np.ndarray) -> np.ndarray:
    """A block of ``donor``'s voxels in the lesion ``core`` (size 2 * ``half`` + 1), its mean where the core ends."""
    voxels = np.argwhere(core)
    centre = voxels[len(voxels) // 2]
    index = [np.clip(np.arange(c - h, c + h + 1), 0, n - 1) for c, h, n in zip(centre, half, core.shape)]
    block = donor.array[np.ix_(*index)].astype(np.float32)
    return np.where(core[np.ix_(*index)], block, float(donor.array[core].mean()))


def insert_nodule(image: Volume, core: np.ndarray, site_kji, rng: np.random.Generator) -> Nodule:
    """One nodule of random radii (RADII_MM) at voxel ``site_kji``, its centre moved up to half a voxel,
    made of the image's voxels in the lesion ``core``."""
    spacing = np.asarray(image.spacing, dtype=float)[::-1]
    radii = tuple(float(rng.uniform(lo, hi)) for lo, hi in RADII_MM)
    offset = rng.uniform(-0.5, 0.5, size=3) * spacing
    weight, half = partial_volume(radii, spacing, offset, rng)
    site = np.asarray(site_kji)
    block = tuple(slice(c - h, c + h + 1) for c, h in zip(site, half))
    if any(b.start < 0 or b.stop > n for b, n in zip(block, image.array.shape)):
        raise InputError(f"nodule at voxel {site.tolist()} does not fit in the image", image.metadata.get("path"))
    array = image.array.astype(np.float32)
    array[block] = array[block] * (1 - weight) + donor_tissue(image, core, half) * weight
    label = np.zeros(image.array.shape, dtype=np.uint8)
    label[block] = weight >= 0.5
    centre_lps = image.ijk_to_lps((site[::-1] + offset[::-1] / spacing[::-1])[None])[0]
    volume_ml = float(label.sum() * np.prod(spacing) / 1000.0)
    if np.issubdtype(image.array.dtype, np.integer):
        array = np.round(array)
    return Nodule(image.with_array(array.astype(image.array.dtype)), image.with_array(label), centre_lps,
                  radii, volume_ml)


def nodule_cases(image: Volume, donor_label: Volume, count: int = 6, seed: int = 1) -> list[Nodule]:
    """``count`` check cases, one nodule each, made of the lesion under ``donor_label`` (seeded)."""
    if count < 1:
        raise InputError("the number of nodules must be at least 1")
    if not image.same_grid(donor_label):
        raise InputError("the lesion label is not on the image's grid", donor_label.metadata.get("path"))
    if not (donor_label.array > 0).any():
        raise InputError("the lesion label is empty: no tumour tissue to make nodules of",
                         donor_label.metadata.get("path"))
    rng = np.random.default_rng(seed)
    core = lesion_core(donor_label)
    return [insert_nodule(image, core, site, rng) for site in nodule_sites(image, donor_label, count, rng)]
