"""What our patches rely on inside Celery, kombu and Flower, and a check that it is still there.

A module that replaces, wraps or overrides a library's private attribute declares it in its
``RELIES_ON`` tuple, with the release it was written against. tests/ops/test_patched_internals.py
checks every declaration against the installed libraries, so an upgrade that moves or reshapes
one fails there, by name, instead of in a running worker.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

CELERY = "celery 5.7.0"
KOMBU = "kombu 5.7.0"
FLOWER = "flower 2.2.0"


@dataclass(frozen=True)
class Internal:
    """One library attribute a patch relies on.

    ``target`` is ``"package.module:Class.attribute"`` or ``"package.module:attribute"``.
    ``signature`` (a callable's parameters, as ``inspect.signature`` prints them without
    annotations) is checked when given; otherwise only presence. An attribute that instances
    set for themselves (``self.hub = hub``) names ``assigned_in``, the module whose code assigns
    it, since the class alone does not have it.
    """

    target: str
    written_for: str
    signature: str | None = None
    assigned_in: str | None = None

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def path(self) -> list[str]:
        return self.target.partition(":")[2].split(".")

    def problem(self) -> str | None:
        """Why the installed library no longer matches this declaration, or None."""
        try:
            found: Any = importlib.import_module(self.module)
        except ImportError as exc:
            return f"module {self.module} cannot be imported ({exc})"
        *owners, name = self.path
        for part in owners:
            if not hasattr(found, part):
                return f"{self.module}.{part} no longer exists"
            found = getattr(found, part)
        if self.assigned_in is not None:
            if not _assigns(self.assigned_in, name):
                return f"nothing in {self.assigned_in} assigns `.{name}` any more"
            return None
        if not hasattr(found, name):
            return "no longer exists"
        if self.signature is not None:
            actual = parameters(getattr(found, name))
            if actual != self.signature:
                return f"its parameters are now {actual}, where the patch expects {self.signature}"
        return None

    def failure(self, declared_by: str) -> str | None:
        """A message naming the attribute, the release the patch was written for and the one
        installed, or None when the declaration still holds."""
        problem = self.problem()
        if problem is None:
            return None
        library = self.written_for.split()[0]
        return (
            f"{self.target} (relied on by the patch in {declared_by}, written for {self.written_for};"
            f" installed: {library} {installed(library)}): {problem}."
            f" Check the patch against this release before changing its RELIES_ON."
        )


def parameters(function: Any) -> str:
    """A callable's parameters without annotations, e.g. ``(self, asynchronous=False)``."""
    signature = inspect.signature(function)
    bare = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=inspect.Signature.empty))


def installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _assigns(module_name: str, attribute: str) -> bool:
    """Whether the module's source assigns ``<something>.<attribute>`` anywhere."""
    module: ModuleType = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and leaf.attr == attribute and isinstance(leaf.ctx, ast.Store):
                    return True
    return False
