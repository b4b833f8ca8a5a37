"""``rtsam web``: the browser viewer (trame-slicer) over the RTInjurySAM and ITV4DCT logics."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
from pathlib import Path

from ..errors import InputError

LOOPBACK_NAMES = ("localhost",)


def register(subparsers) -> None:
    p = subparsers.add_parser("web", help="web viewer: segment and build ITVs in the browser",
                              description="Serve the web viewer (needs the 'web' and 'slicer' extras). DATA: an image "
                                          "file or DICOM folder, then reference mask files, loaded at start.")
    p.add_argument("data", nargs="*", metavar="DATA", help="image file or DICOM folder, then mask files")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", help="key clients give as ?secret=KEY in the URL (needed off loopback)")
    key.add_argument("--api-key-file", help="file with one accepted key per line")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.set_defaults(func=run)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, keys: list[str]) -> None:
    """Loopback needs no key; any other address (a LAN, 0.0.0.0) requires one."""
    if not is_loopback(host) and not keys:
        raise InputError(f"binding to {host} exposes the viewer beyond this machine: give --api-key or --api-key-file")


def run(args: argparse.Namespace) -> int:
    from ..server.auth import load_keys

    keys = load_keys(args.api_key, args.api_key_file)
    check_binding(args.host, keys)
    for path in args.data:  # before the engine loads (seconds)
        if not Path(path).exists():
            raise InputError("file or folder not found", path)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # headless GPU/Mesa rendering
    missing = [name for name in ("trame_slicer", "slicer") if importlib.util.find_spec(name) is None]
    if missing:  # found, not imported: the engine must load first
        raise InputError(f"rtsam web needs the 'slicer' and 'web' extras (missing {', '.join(missing)}): "
                         "pip install -e '.[slicer,web]'")
    from ..web.app import WebApp
    from ..web.backend import in_process_backend

    backend = in_process_backend(args.device)
    print("rtsam web: loading the engine", flush=True)
    backend.engine(None)  # before VTK and slicer-core: importing torchvision after them crashes the process
    app = WebApp(backend, api_keys=keys)
    if args.data:
        app.state.case_path = str(args.data[0])
        app.state.mask_paths = "\n".join(str(p) for p in args.data[1:])
        app.load_case()
    print(f"rtsam web: http://{args.host}:{args.port}/" + ("?secret=KEY" if keys else ""), flush=True)
    sys.argv = sys.argv[:1]  # trame parses sys.argv itself: the options above are passed explicitly
    app.server.start(host=args.host, port=args.port, open_browser=False, show_connection_info=False, timeout=0)
    return 0
