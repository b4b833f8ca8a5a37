"""``rtsam examples fetch``: the example data from the PyPI sdists they ship in, into the user cache."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("examples", help="the real example data (fetch it from the package index)")
    sub = p.add_subparsers(dest="examples", metavar="ACTION", required=True)
    q = sub.add_parser(
        "fetch", help="download the pyradiomics and dicompyler-core sdists and keep the example files",
        description="Downloads the sdists pinned in rtsam/examples/manifest.json from the package index pip uses, "
        "takes out only the example files, checks each against its sha256 and stores them (default: the user cache, "
        "searched after RTSAM_DATA_DIR and shared/data beside the checkout).",
    )
    q.add_argument("--dir", help="folder to store the files in (default: the user cache folder)")
    q.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..examples import cache_dir, fetch_examples, manifest

    dest = Path(args.dir) if args.dir else cache_dir()
    written = fetch_examples(dest)
    total = len(manifest()["files"])
    state = f"fetched {len(written)}, {total - len(written)} already there" if written else "all already there"
    print(f"{total} example files checked (sha256) in {dest}: {state}")
    return 0
