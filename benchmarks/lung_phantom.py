"""Four real lung-tumour CTs no rule was tuned on: CancerData's "Radiomics Digital Phantom" in pycerr's sdist.

``pycerr==2.5.1`` (PyPI sdist, sha256 5c9dd91d2e12d689329e91d8cf16b0c323bdf2489393ce457199ffd98b36e687) ships
``cerr/datasets/radiomics_phantom_dicom/pat_1..4``: cropped planning CTs (0.977 x 0.977 x 3 mm) of four
lung-cancer patients, each with an RTSTRUCT holding one GTV ("GTV-1"). Licence CC BY-NC 3.0 (Lambin P.,
Radiomics Digital Phantom, CancerData 2016, doi:10.17195/candat.2016.08.1), so it is not among the fetched
example data. ``prepare`` takes the DICOM folders out of the sdist and writes a manifest for
``rtsam benchmark interactive --cases`` (the GTV is read from the RTSTRUCT by rtsam's own readers):

    pip download --no-deps --no-binary=:all: pycerr==2.5.1
    PYTHONPATH=. python benchmarks/lung_phantom.py --sdist pycerr-2.5.1.tar.gz --out /tmp/phantom
    rtsam benchmark interactive --cases /tmp/phantom/manifest.json --clicks 3 [--presence on]

Results: benchmarks/results/lung_phantom_{off,on}.json (presence off, the default, and on).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

MEMBER = "cerr/datasets/radiomics_phantom_dicom/"
STRUCTURE = "GTV-1"


def prepare(sdist: Path, out: Path) -> None:
    """The four patients' DICOM files under ``out/pat_<n>/`` and ``out/manifest.json``."""
    cases = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if not (inner.startswith(MEMBER + "pat_") and member.isfile()):
                continue
            patient, filename = inner[len(MEMBER):].split("/")
            target = out / patient / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            case = cases.setdefault(patient, {"name": patient.replace("_", ""), "image": patient,
                                              "structure": STRUCTURE})
            if "_RS_" in filename:
                case["label"] = f"{patient}/{filename}"
    manifest = [cases[p] for p in sorted(cases)]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} cases: {out / 'manifest.json'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdist", type=Path, required=True, help="pycerr-2.5.1.tar.gz")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the cases and manifest into")
    args = parser.parse_args()
    prepare(args.sdist, args.out)


if __name__ == "__main__":
    main()
