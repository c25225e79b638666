"""The undo registry: every kind of thing the harness makes says, in its own module, how it is removed.

A kind is a frozen dataclass subclassing ``UndoStep`` and decorated with ``@undo.kind``; its fields are
the fields of its undo-log entry in ``state.json`` (``{"kind": KIND, **fields}``).  Making a thing is
``Step(...).log(state)`` *then* the making, so a half-made thing is still undone.  ``down`` parses each
entry back into its step and calls ``step.undo(state)``, newest first (teardown.py); an undo must
tolerate a thing that never came to exist or is already gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Self, TypeVar

from .errors import HarnessError
from .records import UndoRecord
from .state import State


@dataclasses.dataclass(frozen=True)
class UndoStep:
    KIND: ClassVar[str]

    def undo(self, state: State) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no undo")

    def to_record(self) -> UndoRecord:
        return {"kind": self.KIND, **dataclasses.asdict(self)}

    def log(self, state: State) -> None:
        """Append this step to the state's undo log (saved at once), before the thing is made."""
        state.record(self.to_record())

    @classmethod
    def from_record(cls, record: UndoRecord) -> Self:
        fields = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in record.items() if k != "kind"}
        if set(given) != fields:
            raise HarnessError(f"undo entry {record}: fields {sorted(given)}, expected {sorted(fields)}")
        factory: Callable[..., Self] = cls
        return factory(**given)


Step = TypeVar("Step", bound=type[UndoStep])
_KINDS: dict[str, type[UndoStep]] = {}


def kind(cls: Step) -> Step:
    """Class decorator: register an UndoStep subclass under its KIND."""
    name = cls.KIND
    if _KINDS.get(name, cls) is not cls:
        raise RuntimeError(f"undo kind {name!r} is registered twice ({_KINDS[name].__name__}, {cls.__name__})")
    _KINDS[name] = cls
    return cls


def registered() -> dict[str, type[UndoStep]]:
    return dict(_KINDS)


def parse(record: UndoRecord) -> UndoStep:
    name = record.get("kind")
    cls = _KINDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise HarnessError(f"unknown undo entry {name!r}")
    return cls.from_record(record)
