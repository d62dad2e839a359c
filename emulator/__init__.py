"""A local OpenRouter emulator: a development and test tool, never a production service.

It answers the OpenRouter endpoints the workers use (chat completions, streaming,
models, key, generation) with deterministic content and exact Decimal costs, and it
fails on demand through a control API so retry and fallback paths can be exercised.
"""

from .catalog import CATALOG, ModelInfo, find_model
from .control import EmulatorControl, EmulatorControlError
from .faults import FAULT_KINDS
from .server import create_app, serve
from .testing import RunningEmulator, running_emulator

__all__ = [
    "CATALOG",
    "FAULT_KINDS",
    "EmulatorControl",
    "EmulatorControlError",
    "ModelInfo",
    "RunningEmulator",
    "create_app",
    "find_model",
    "running_emulator",
    "serve",
]
