"""``rtsam serve``: the remote inference server (FastAPI + uvicorn), or a load test."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .common import add_ct_window, add_engine_arguments, add_presence, add_prompt_policy, engine_options, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve an engine over HTTP for remote Slicer clients",
                              description="Serve an engine over HTTP (OpenAPI schema at /openapi.json, docs at "
                                          "/docs). Clients: rtsam.client.RemoteEngine / RemoteSession.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0: a free one; see --ready-file)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", help="require this key in the X-API-Key header")
    key.add_argument("--api-key-file", help="file with one accepted key per line")
    add_engine_arguments(p)
    add_ct_window(p)
    add_presence(p)
    add_prompt_policy(p)
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="do not torch.compile the engine at start-up (default on CUDA: compile, eager on failure)")
    p.add_argument("--compile-decoder", action="store_true",
                   help="also compile the click decoder (CUDA graphs on a GPU; same masks, lower latency)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM); clients verify it")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    limits = p.add_argument_group("capacity and limits")
    limits.add_argument("--max-sessions", type=int, default=32, help="open sessions before refusing (503; default 32)")
    limits.add_argument("--max-cached", type=int, help="sessions keeping embeddings (LRU; default max-sessions)")
    limits.add_argument("--idle-timeout", type=float, default=1800.0,
                        help="seconds before an idle session closes (default 1800)")
    limits.add_argument("--max-upload-mb", type=float, default=256.0,
                        help="largest compressed upload (413 beyond; default 256)")
    limits.add_argument("--max-concurrent", type=int, default=2, help="predictions running at once (default 2)")
    limits.add_argument("--deadline", type=float, default=30.0,
                        help="seconds within which a click is answered; one the queue cannot answer in time is "
                             "refused at once with 503 + Retry-After (default 30; a client's shorter timeout wins)")
    limits.add_argument("--max-sessions-per-key", type=int, default=16,
                        help="open sessions per API key (429 beyond; default 16)")
    limits.add_argument("--key-requests-per-minute", type=int, default=600,
                        help="requests per API key per minute (429 + Retry-After beyond; 0: unlimited; default 600)")
    limits.add_argument("--key-upload-mb-per-minute", type=float, default=2048.0,
                        help="MiB uploaded per API key per minute (429 beyond; 0: unlimited; default 2048)")
    load = p.add_argument_group("load test")
    load.add_argument("--load-test", type=int, metavar="N",
                      help="instead of serving: start on a free loopback port (per-key limits raised to fit N "
                           "sessions of one key), run N concurrent sessions, print latency percentiles as JSON, exit")
    load.add_argument("--clicks", type=int, default=3, help="clicks per session in --load-test (default 3)")
    load.add_argument("--url", help="--load-test against this running server instead (--api-key is its key)")
    load.add_argument("--ca-bundle", help="CA certificates (PEM) to verify an https --url")
    load.add_argument("--insecure", action="store_true",
                      help="do not verify the certificate of an https --url (self-signed tests only)")
    p.add_argument("--ready-file", help="write {\"url\", \"pid\"} here once serving (for a parent program, e.g. Slicer)")
    p.add_argument("--exit-with-stdin", action="store_true", help="stop when standard input closes (the parent exited)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server.auth import load_keys

    keys = load_keys(args.api_key, args.api_key_file)
    if args.url:
        if not args.load_test:
            raise InputError("--url is for --load-test against a running server")
        return load_test(args.url, keys[0] if keys else None, args.load_test, args.clicks,
                         ca_bundle=args.ca_bundle, insecure=args.insecure)
    config = server_config(args, keys)
    from ..server.app import create_app

    app = create_app(config)
    if args.load_test:
        from ..server.run import background_server

        with background_server(app) as url:
            return load_test(url, keys[0] if keys else None, args.load_test, args.clicks, app=app)
    if args.ready_file:
        from ..server.ready import serve_for_parent

        serve_for_parent(app, config, args.ready_file, args.exit_with_stdin)
        return 0
    from ..server.run import serve

    serve(app, config)
    return 0


def server_config(args: argparse.Namespace, keys: list[str]):
    from pathlib import Path

    from ..server.config import ServerConfig

    if bool(args.tls_cert) != bool(args.tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    for path in (args.tls_cert, args.tls_key):
        if path and not Path(path).is_file():
            raise InputError("TLS file not found", path)
    n = args.load_test or 0
    return ServerConfig(host=args.host, port=args.port, api_keys=keys, engine=args.engine,
                        checkpoint=args.checkpoint, device=args.device, compile=args.compile,
                        compile_decoder=args.compile_decoder,
                        engine_options=engine_options(args),
                        max_sessions=max(args.max_sessions, n),
                        max_cached=args.max_cached, idle_timeout=args.idle_timeout, max_upload_mb=args.max_upload_mb,
                        max_concurrent=args.max_concurrent, deadline_s=args.deadline,
                        max_per_key=max(args.max_sessions_per_key, n),
                        key_requests_per_minute=0 if n else args.key_requests_per_minute,
                        key_upload_mb_per_minute=0 if n else args.key_upload_mb_per_minute,
                        tls_cert=args.tls_cert, tls_key=args.tls_key)


def load_test(url: str, api_key: str | None, sessions: int, clicks: int, app=None, **tls) -> int:
    from ..devices import device_info
    from ..server.loadtest import example_case, run_load_test

    image, box = example_case()
    report = run_load_test(url, image, box, sessions, clicks, api_key, **tls)
    report["image_shape"] = list(image.array.shape)
    if app is not None:
        report.update(engine=app.state.engine.name, **device_info(app.state.engine.device),
                      max_concurrent=app.state.config.max_concurrent,
                      service_s=app.state.scheduler.times.snapshot())
    print_json(report)
    return 1 if report["failures"] else 0

