"""Our patches on Celery, kombu and Flower internals still find what they were written for.

Every module that replaces, wraps or overrides a library attribute declares it in
``RELIES_ON`` (workers/ops/internals.py). An upgrade that removes one, or changes its
parameters, fails here with the attribute's name and the release the patch was written for.
The last two tests keep the declarations complete: a new patch without its declaration fails.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from importlib import metadata
from pathlib import Path

import pytest

from workers.ops.internals import Internal

pytestmark = pytest.mark.unit  # no Postgres, no Redis

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("workers", "tasks", "config", "db", "cli")
LIBRARIES = ("celery", "kombu", "redis", "flower", "billiard")
# The modules that patch library internals (each declares RELIES_ON).
PATCHING = (
    "workers.ops.redis_clients",
    "workers.ops.kombu_guard",
    "workers.ops.json_codec",
    "workers.ops.event_batching",
    "workers.ops.redaction",
    "workers.ops.task_base",
    "workers.ops.result_backend",
    "workers.ops.flower_guard",
    "tasks.intake",
)


def first_party_modules() -> list[str]:
    names = ["celeryconfig"]
    for package in FIRST_PARTY:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:  # alembic scripts run only under alembic
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def declared(module_name: str) -> tuple[Internal, ...]:
    return tuple(getattr(importlib.import_module(module_name), "RELIES_ON", ()))


@pytest.mark.parametrize("module_name", PATCHING)
def test_what_each_patch_relies_on_is_still_in_the_installed_libraries(module_name: str) -> None:
    relied_on = declared(module_name)
    assert relied_on, f"{module_name} patches library internals but declares no RELIES_ON"
    failures = [message for item in relied_on if (message := item.failure(module_name)) is not None]
    assert not failures, "\n".join(failures)


def test_a_moved_attribute_or_a_changed_signature_is_reported_by_name_and_release() -> None:
    gone = Internal("kombu.transport.redis:Channel._no_such_method", "kombu 5.7.0", "(self)")
    reshaped = Internal("kombu.transport.redis:Channel._create_client", "kombu 5.7.0", "(self, asynchronous)")
    unassigned = Internal(
        "kombu.transport.redis:Channel.no_such_field", "kombu 5.7.0", assigned_in="kombu.transport.redis"
    )
    assert gone.failure("workers.ops.x") == (
        "kombu.transport.redis:Channel._no_such_method (relied on by the patch in workers.ops.x, written for"
        f" kombu 5.7.0; installed: kombu {metadata.version('kombu')}): no longer exists."
        " Check the patch against this release before changing its RELIES_ON."
    )
    reshaped_failure = reshaped.failure("workers.ops.x")
    assert reshaped_failure is not None
    assert "its parameters are now (self, asynchronous=False), where the patch expects (self, asynchronous)" in (
        reshaped_failure
    )
    assert "nothing in kombu.transport.redis assigns `.no_such_field`" in (unassigned.failure("x") or "")


def _library_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it names in a library: ``module`` or ``module:attribute``."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES:
                    aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            for alias in node.names:
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                except ImportError:
                    aliases[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    return aliases


def _assigned_library_attributes(module_name: str) -> set[str]:
    """The library attributes a module assigns to (``kombu_redis.Channel._connparams = ...``,
    ``urls.handlers[i] = ...``), as RELIES_ON targets."""
    source = inspect.getsource(importlib.import_module(module_name))
    tree = ast.parse(source)
    aliases = _library_aliases(tree)
    found = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            for leaf in target.elts if isinstance(target, ast.Tuple) else [target]:
                while isinstance(leaf, ast.Subscript):
                    leaf = leaf.value
                chain = []
                while isinstance(leaf, ast.Attribute):
                    chain.insert(0, leaf.attr)
                    leaf = leaf.value
                if chain and isinstance(leaf, ast.Name) and leaf.id in aliases:
                    base = aliases[leaf.id]
                    found.add(f"{base}.{'.'.join(chain)}" if ":" in base else f"{base}:{'.'.join(chain)}")
    return found


def test_every_module_that_declares_what_it_relies_on_is_checked() -> None:
    assert {m for m in first_party_modules() if declared(m)} == set(PATCHING)


def test_every_assignment_to_a_library_attribute_is_declared() -> None:
    missing = []
    for module_name in first_party_modules():
        targets = {item.target for item in declared(module_name)}
        missing += [f"{module_name} assigns {t}" for t in sorted(_assigned_library_attributes(module_name) - targets)]
    assert not missing, "declare these in the module's RELIES_ON:\n" + "\n".join(missing)


def test_every_override_of_a_library_method_is_declared() -> None:
    missing = []
    for module_name in first_party_modules():
        module = importlib.import_module(module_name)
        targets = declared(module_name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module_name:
                continue
            library_bases = [b for b in cls.__mro__[1:] if b.__module__.split(".")[0] in LIBRARIES]
            for name, value in vars(cls).items():
                if name.startswith("__") or not inspect.isfunction(value):
                    continue  # constructors and class settings are the library's public surface
                if not any(hasattr(base, name) for base in library_bases):
                    continue
                if not any(item.path[-1] == name for item in targets):
                    missing.append(f"{module_name}.{cls.__name__}.{name}")
    assert not missing, "these override library methods; declare them in the module's RELIES_ON:\n" + "\n".join(missing)
