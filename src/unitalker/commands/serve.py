"""``unitalker serve``: the HTTP / WebSocket server and the browser viewer."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP/WebSocket server with the browser viewer",
        description="Serve a model over HTTP (POST /v1/animate), WebSocket (/v1/stream) "
        "and a browser viewer at /. Needs the 'serve' extra: pip install 'unitalker[serve]'.",
    )
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help="bundled model name, checkpoint path or hub id OWNER/NAME",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--max-concurrency", type=int, default=2, help="inference jobs at once")
    p.add_argument("--queue-limit", type=int, default=8, help="jobs waiting; more get 503")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload (413)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="longest clip/stream (413)")
    p.add_argument("--max-streams", type=int, default=8, help="WebSocket streams at once")
    p.add_argument(
        "--upload-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds (> 0) for a whole request body to arrive; slower uploads get 408 (default 60)",
    )
    p.add_argument(
        "--decode-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds (> 0) of wall time to decode one upload; longer gets 400 (default 30)",
    )
    p.add_argument(
        "--stream-send-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds (> 0) a WebSocket client may go without reading before it is closed "
        "(default 10)",
    )
    p.add_argument(
        "--livelink",
        metavar="HOST:PORT",
        default=None,
        help="also send every stream's ARKit head as Live Link Face UDP packets to Unreal",
    )
    p.add_argument(
        "--livelink-subject", default="unitalker", help="Live Link subject name (default unitalker)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from unitalker.cli import CLIError

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise CLIError(
            f"serving needs the 'serve' extra: pip install 'unitalker[serve]' ({e})"
        ) from e
    import unitalker
    from unitalker.serve.app import serve
    from unitalker.serve.settings import ServeSettings

    try:
        settings = ServeSettings(
            max_concurrency=args.max_concurrency,
            queue_limit=args.queue_limit,
            max_upload_mb=args.max_upload_mb,
            max_seconds=args.max_seconds,
            max_streams=args.max_streams,
            upload_timeout_seconds=args.upload_timeout,
            decode_timeout_seconds=args.decode_timeout,
            stream_send_timeout_seconds=args.stream_send_timeout,
            model_name=args.model or "default",
            livelink=args.livelink,
            livelink_subject=args.livelink_subject,
        )
    except ValueError as e:
        raise CLIError(str(e)) from e
    model = unitalker.load_model(args.model, device=args.device)
    print(f"unitalker serve: heads {', '.join(model.heads)}")
    if args.livelink:
        print(f"unitalker serve: streams also go to Live Link at {args.livelink}")
    print(f"unitalker serve: open http://{args.host}:{args.port}/ (API docs at /docs)")
    serve(model, settings, host=args.host, port=args.port)
    return 0
