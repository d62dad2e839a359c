"""The `litellm` variant's process: a LiteLLM Router (no queue, no database) making the
same chat completion as the pipeline against the emulator, at the same concurrency.

Run by bench/throughput.py as its own process, so its CPU is read from /proc like a
worker's. It speaks a line protocol on stdin/stdout:

    stdin  <- one JSON line: {"base_url", "api_key", "request", "concurrency", "warmup", "jobs"}
    stdout -> "READY"                      (imported, warm-up batch done)
    stdin  <- "GO"                         (the harness read our CPU: t0)
    stdout -> one JSON line with the results (per-call ok/content/cost, end time)
    stdin  <- "EXIT"                       (the harness read our CPU again)

LiteLLM is an optional dependency (`pip install -e '.[bench]'`); without it this process
prints "MISSING <reason>" and exits 3, and the harness skips the variant.

Concurrency: one asyncio event loop with `concurrency` calls in flight (`Router.acompletion`
behind a semaphore): LiteLLM's own high-throughput path, the counterpart of a worker
process with `-P threads -c <concurrency>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from decimal import Decimal
from typing import Any

# Offline: LiteLLM fetches its model price map from the internet at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

MODEL_ALIAS = "bench-chat"


def build_router(base_url: str, api_key: str, model: str) -> Any:
    """One deployment: LiteLLM's OpenRouter provider pointed at the emulator. The model is
    the OpenRouter model id (e.g. ``openai/gpt-4o``) under LiteLLM's ``openrouter/`` prefix,
    so the request body carries exactly the id the pipeline sends."""
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return Router(
        model_list=[
            {
                "model_name": MODEL_ALIAS,
                "litellm_params": {
                    "model": f"openrouter/{model}",
                    "api_base": base_url,
                    "api_key": api_key,
                    "timeout": 60.0,
                },
            }
        ],
        num_retries=0,  # the SDK baseline uses max_retries=0 too
    )


async def run_batch(router: Any, request: dict[str, Any], n: int, concurrency: int) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    params = {k: v for k, v in request.items() if k != "model"}

    async def one() -> dict[str, Any]:
        async with sem:
            try:
                resp = await router.acompletion(model=MODEL_ALIAS, **params)
            except Exception as exc:  # a failed call is a failed check, not a crash
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "t": time.time()}
            usage = getattr(resp, "usage", None)
            cost = getattr(usage, "cost", None) if usage is not None else None
            content = resp.choices[0].message.content if resp.choices else None
            return {
                "ok": True,
                "content": bool(content),
                "cost": str(Decimal(str(cost))) if cost is not None else None,
                "t": time.time(),
            }

    return await asyncio.gather(*(one() for _ in range(n)))


async def main_async(config: dict[str, Any]) -> None:
    router = build_router(config["base_url"], config["api_key"], config["request"]["model"])
    if config.get("warmup"):
        await run_batch(router, config["request"], config["warmup"], config["concurrency"])
    loop = asyncio.get_running_loop()
    print("READY", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() != "GO":
        return
    t0 = time.time()
    calls = await run_batch(router, config["request"], config["jobs"], config["concurrency"])
    errors = [c["error"] for c in calls if not c["ok"]]
    costs = [Decimal(c["cost"]) for c in calls if c["ok"] and c.get("cost") is not None]
    print(
        json.dumps(
            {
                "t0": t0,
                "last_done": max((c["t"] for c in calls), default=t0),
                "completed": len(calls),
                "succeeded": sum(1 for c in calls if c["ok"]),
                "with_content": sum(1 for c in calls if c["ok"] and c["content"]),
                "with_cost": len(costs),
                "cost_total": str(sum(costs, Decimal(0))),
                "errors": errors[:5],
            }
        ),
        flush=True,
    )
    await loop.run_in_executor(None, sys.stdin.readline)  # "EXIT": the harness has read our CPU


def main() -> int:
    config = json.loads(sys.stdin.readline())
    try:
        import litellm  # noqa: F401
    except ImportError as exc:
        print(f"MISSING {exc}", flush=True)
        return 3
    asyncio.run(main_async(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
