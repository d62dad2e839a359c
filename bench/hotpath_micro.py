"""What each hot-path speed-up saves per call, measured in one process, stock
and changed interleaved (so machine load hits both alike):

    python -m bench.hotpath_micro [--rounds 5] [--number 2000]

- building a redis-py client (what kombu does per command without workers/ops/redis_clients.py)
  against reusing one;
- kombu's json codec against workers/ops/json_codec.py, on the payloads a job really sends: a
  task body, a JobResult result meta, a batch of task events, a Redis transport envelope.

Multiply by the per-job counts `bench.throughput` prints (`redis clients built`,
`json enc/dec`) for the saving per job. Needs no server (the client is never connected).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import timeit
from collections.abc import Callable
from typing import Any

CONTENT = "Mara kept the last lighthouse on the northern coast. " * 8
SCRIPT = "INT. LIGHTHOUSE - NIGHT. Mara logs a ship with no lights. " * 30

PAYLOADS: dict[str, Any] = {
    "task body": (
        [],
        {"user_id": "bench-u-1", "content": CONTENT, "script_type": "cinematic", "idempotency_key": None},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ),
    "result meta": {
        "status": "SUCCESS",
        "result": {
            "job_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "status": "succeeded",
            "reason": None,
            "content": SCRIPT,
            "usage": {"prompt_tokens": 120, "completion_tokens": 900, "total_tokens": 1020, "cost_usd": "0.0093"},
            "model_used": "openai/gpt-4o",
            "used_fallback": False,
        },
        "traceback": None,
        "children": [],
        "date_done": "2026-11-28T18:00:00.000000+00:00",
        "task_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    },
    "event batch": [
        {
            "hostname": "bench@localhost",
            "utcoffset": 0,
            "pid": 4242,
            "clock": 1234 + i,
            "uuid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "timestamp": 1795887362.123,
            "type": "task-started",
        }
        for i in range(3)
    ],
    "envelope": {
        "body": base64.b64encode(CONTENT.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "litink.submit_script", "id": "0f1e2d3c", "retries": 0, "eta": None},
        "properties": {"correlation_id": "0f1e2d3c", "delivery_mode": 2, "priority": 2, "body_encoding": "base64"},
    },
}


def per_call_us(fn: Callable[[], Any], number: int, rounds: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=rounds)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath_micro", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--number", type=int, default=2000)
    args = p.parse_args(argv)

    import redis
    from kombu.utils import json as kombu_json

    from workers.ops import json_codec

    pool = redis.ConnectionPool(host="127.0.0.1", port=1)  # never connected
    shared = redis.Redis(connection_pool=pool)
    build = per_call_us(lambda: redis.Redis(connection_pool=pool), args.number, args.rounds)
    reuse = per_call_us(lambda: shared, args.number, args.rounds)
    print(f"redis-py client: build {build:.1f} us, reuse {reuse:.2f} us -> saves {build - reuse:.1f} us per command")

    enc_saves, dec_saves = [], []
    for name, value in PAYLOADS.items():
        text = kombu_json.dumps(value)
        enc_stock = per_call_us(lambda v=value: kombu_json.dumps(v), args.number, args.rounds)
        enc_ours = per_call_us(lambda v=value: json_codec.dumps(v), args.number, args.rounds)
        dec_stock = per_call_us(lambda t=text: kombu_json.loads(t), args.number, args.rounds)
        dec_ours = per_call_us(lambda t=text: json_codec.loads(t), args.number, args.rounds)
        enc_saves.append(enc_stock - enc_ours)
        dec_saves.append(dec_stock - dec_ours)
        print(
            f"{name:<12} ({len(text):>5} chars): encode {enc_stock:6.1f} -> {enc_ours:5.1f} us, "
            f"decode {dec_stock:6.1f} -> {dec_ours:5.1f} us"
        )
    print(
        f"mean saving per call over these payloads: encode {statistics.mean(enc_saves):.1f} us, "
        f"decode {statistics.mean(dec_saves):.1f} us"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
