"""``unitalker loadtest``: concurrent clients against the server (loopback by default)."""

from __future__ import annotations

import argparse

from unitalker.commands._args import COUNT, NON_NEGATIVE_INT, POSITIVE_SECONDS, Number


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loadtest",
        help="load-test the server: concurrent uploads and streams, latency percentiles",
        description="Run N concurrent clients posting clips to /v1/animate and streaming them "
        "over /v1/stream; verify every answer's frame counts; report throughput, p50/p95 "
        "latency, errors and the streaming first-frame latency. Without --url a server is "
        "started in-process on a free 127.0.0.1 port with -m MODEL.",
    )
    p.add_argument("--url", default=None, help="a running server, e.g. http://127.0.0.1:8000")
    p.add_argument("-m", "--model", default=None, help="model for the in-process server")
    p.add_argument("--device", default=None, help="torch device of the in-process server")
    p.add_argument(
        "--clients",
        type=Number(int, 1, 1024),
        default=4,
        help="concurrent clients (%(type)s; default 4)",
    )
    p.add_argument(
        "--requests", type=COUNT, default=8, help="requests per client (%(type)s; default 8)"
    )
    p.add_argument(
        "--duration",
        type=POSITIVE_SECONDS,
        default=60.0,
        help="stop after S seconds (%(type)s; 60)",
    )
    p.add_argument("--mode", choices=("mixed", "animate", "stream"), default="mixed")
    p.add_argument("--audio", default=None, help="clip to send (default: a synthetic one)")
    p.add_argument(
        "--seconds",
        type=Number(float, 0.1, 600),
        default=3.0,
        help="synthetic clip length (%(type)s; 3 s)",
    )
    p.add_argument("--heads", default=None, help="comma-separated heads (default: all)")
    p.add_argument(
        "--latency-runs",
        type=NON_NEGATIVE_INT,
        default=3,
        help="real-time first-frame runs (%(type)s; 3)",
    )
    p.add_argument(
        "--max-concurrency", type=COUNT, default=2, help="in-process server workers (%(type)s; 2)"
    )
    p.add_argument(
        "--queue-limit",
        type=NON_NEGATIVE_INT,
        default=64,
        help="in-process server queue (%(type)s; 64)",
    )
    p.add_argument("--json", default=None, help="also write the report as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import contextlib
    import json

    from unitalker.audio import load_audio
    from unitalker.serve.loadtest import background_server, run_loadtest, synthetic_clip

    wav = load_audio(args.audio) if args.audio else synthetic_clip(args.seconds)
    heads = [h for h in (args.heads or "").split(",") if h] or None
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            import unitalker
            from unitalker.serve import ServeSettings, create_app

            model = unitalker.load_model(args.model, device=args.device)
            settings = ServeSettings(
                max_concurrency=args.max_concurrency,
                queue_limit=args.queue_limit,
                max_streams=max(8, args.clients),
                model_name=args.model or "default",
            )
            url = stack.enter_context(background_server(create_app(model, settings)))
        print(
            f"load test: {args.clients} clients x {args.requests} requests ({args.mode}) on {url}"
        )
        report = run_loadtest(
            url.rstrip("/"),
            wav,
            clients=args.clients,
            requests=args.requests,
            duration=args.duration,
            mode=args.mode,
            heads=heads,
            latency_runs=args.latency_runs,
        )
    print(report.table())
    for k, s in report.kinds.items():
        for m in s["error_messages"]:
            print(f"  {k} error: {m}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    bad = sum(s["errors"] + s["lost"] for s in report.kinds.values())
    return 1 if bad else 0
