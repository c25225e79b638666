"""Removing a cluster: its undo log, newest first, then its state dir.

Importing the resource modules here registers every undo kind (each module registers its own), so a
log written by any `up` can be undone by any `down`.
"""

from __future__ import annotations

from . import cgroups, network, nspawn, procs, storage, undo  # noqa: F401 - each registers its undo kinds
from .errors import HarnessError
from .state import State


def undo_all(state: State) -> None:
    """Undo every entry, newest first; keep going past failures and report them all at the end
    (the state keeps what could not be undone, so that `down` can run again)."""
    state.data["phase"] = "destroying"
    state.save()
    errors: list[str] = []
    for entry in list(reversed(state.undo)):
        try:
            undo.parse(entry).undo(state)
        except Exception as exc:  # keep going: remove all we can, report the rest
            errors.append(f"{entry.get('kind')} {entry}: {exc}")
            continue
        state.forget(entry)
    if errors:
        raise HarnessError("down could not remove everything (state kept; run down again):\n  "
                           + "\n  ".join(errors))


def remove_state_dir(state: State) -> None:
    """Everything below the state dir, and the dir itself when `up` made it."""
    made_dir = state.data.get("made_state_dir", False)
    for path in sorted(state.dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    if made_dir:
        state.dir.rmdir()
