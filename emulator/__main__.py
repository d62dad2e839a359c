"""``python -m emulator``: run the local OpenRouter emulator in the foreground."""

from __future__ import annotations

import argparse

from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Local OpenRouter emulator for development and tests (never for production).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8099, help="port to listen on (default 8099)")
    parser.add_argument("--latency-ms", type=float, default=0, help="simulated upstream latency per call")
    parser.add_argument("--jitter-ms", type=float, default=0, help="± uniform jitter on that latency")
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms)


if __name__ == "__main__":
    main()
