"""``rtsam serve``: the remote inference server (FastAPI + uvicorn), or a loopback load test."""

from __future__ import annotations

import argparse

from ..devices import add_device_argument
from .common import add_prompt_policy, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve an engine over HTTP for remote Slicer clients",
                              description="Serve an engine over HTTP (OpenAPI schema at /openapi.json, docs at "
                                          "/docs). Clients: rtsam.client.RemoteEngine / RemoteSession.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765)
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", help="require this key in the X-API-Key header")
    key.add_argument("--api-key-file", help="file with one accepted key per line")
    p.add_argument("--engine", help="engine name (default: litemedsam)")
    p.add_argument("--checkpoint", help="weights file for the engine")
    add_device_argument(p)
    add_prompt_policy(p)
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="do not torch.compile the engine at start-up (default on CUDA: compile, eager on failure)")
    p.add_argument("--compile-decoder", action="store_true",
                   help="also compile the click decoder (CUDA graphs on a GPU; same masks, lower latency)")
    p.add_argument("--max-sessions", type=int, default=32, help="open sessions before refusing (503)")
    p.add_argument("--max-cached", type=int, help="sessions keeping embeddings (LRU; default max-sessions)")
    p.add_argument("--idle-timeout", type=float, default=1800.0, help="seconds before an idle session closes")
    p.add_argument("--max-upload-mb", type=float, default=256.0, help="largest compressed upload (413 beyond)")
    p.add_argument("--max-concurrent", type=int, default=2, help="predictions running at once")
    p.add_argument("--load-test", type=int, metavar="N",
                   help="instead of serving: start on a free loopback port, run N concurrent sessions, print "
                        "latency percentiles as JSON and exit")
    p.add_argument("--clicks", type=int, default=3, help="clicks per session in --load-test")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server.app import create_app
    from ..server.auth import load_keys
    from ..server.config import ServerConfig

    config = ServerConfig(host=args.host, port=args.port, api_keys=load_keys(args.api_key, args.api_key_file),
                          engine=args.engine, checkpoint=args.checkpoint, device=args.device,
                          compile=args.compile, compile_decoder=args.compile_decoder,
                          engine_options={"allow_untrained_prompts": True} if args.allow_untrained_prompts else {},
                          max_sessions=max(args.max_sessions, args.load_test or 0), max_cached=args.max_cached,
                          idle_timeout=args.idle_timeout, max_upload_mb=args.max_upload_mb,
                          max_concurrent=args.max_concurrent)
    app = create_app(config)
    if args.load_test:
        return load_test(app, config, args.load_test, args.clicks)
    from ..server.run import serve

    serve(app, config)
    return 0


def load_test(app, config, sessions: int, clicks: int) -> int:
    from ..server.loadtest import example_case, run_load_test
    from ..server.run import background_server

    image, box = example_case()
    with background_server(app) as url:
        report = run_load_test(url, image, box, sessions, clicks, config.api_keys[0] if config.api_keys else None)
    from ..devices import device_info

    report.update(engine=app.state.engine.name, **device_info(app.state.engine.device),
                  image_shape=list(image.array.shape))
    print_json(report)
    return 1 if report["failures"] else 0
