"""Controller tools: finding them (naming the Debian package of a missing one), running them, progress."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence

from .errors import HarnessError
from .plan import TOOL_PACKAGES


def say(message: str) -> None:
    """Progress for humans: stderr, so stdout stays machine-readable."""
    print(f"lockengine-testhosts: {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """Absolute path of a controller tool, or a HarnessError naming the package that provides it."""
    found = shutil.which(name)
    if found is None:
        package = TOOL_PACKAGES.get(name, name)
        raise HarnessError(
            f"missing tool: {name} is not on PATH (install the Debian package '{package}': "
            f"apt-get install -y {package})"
        )
    return found


def require_tools(names: Iterable[str]) -> dict[str, str]:
    """Check every tool at once so the user sees all that is missing in one message."""
    missing: list[str] = []
    found: dict[str, str] = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        packages = sorted({TOOL_PACKAGES.get(m, m) for m in missing})
        raise HarnessError(
            f"missing tool(s): {', '.join(missing)} not on PATH; nothing was changed "
            f"(install: apt-get install -y {' '.join(packages)})"
        )
    return found


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60.0,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a controller command; on failure raise HarnessError with its stderr."""
    cmd = list(argv)
    if not os.path.isabs(cmd[0]):
        cmd[0] = tool(cmd[0])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text,
                              stdin=None if input_text is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{' '.join(argv)}: no answer after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise HarnessError(f"{' '.join(argv)} failed (rc {proc.returncode}): {detail}")
    return proc
