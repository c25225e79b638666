"""Running a lease holder's killpath program with the holder's own credentials (DESIGN §5b).

The production half of the process-control seam's ``run_killpath`` (proc.py): never as root for a
non-root client, no inherited privileges, descriptors or environment.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import TYPE_CHECKING

from .log import get_logger

if TYPE_CHECKING:
    from .clients import Client

log = get_logger("killpath")


KILLPATH_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
SETPRIV = ("/usr/bin/setpriv", "/bin/setpriv")


def killpath_command(client: Client) -> tuple[list[str], dict[str, object]]:
    """argv and Popen credentials for a holder's killpath: its own uid, gid and groups, nothing of ours.

    The program runs as the registering process's user (never as root for a non-root client), with a
    minimal environment, no inherited descriptors, its own session, and no_new_privs (through
    util-linux setpriv, so set-uid programs cannot give it back what it does not have)."""
    assert client.killpath
    argv = list(client.killpath)
    setpriv = next((p for p in SETPRIV if os.access(p, os.X_OK)), None)
    if setpriv is not None:
        argv = [setpriv, "--no-new-privs", "--", *argv]
    creds: dict[str, object] = {}
    if os.geteuid() == 0 and client.uid != 0:
        creds = {"user": client.uid, "group": client.gid if client.gid >= 0 else client.uid,
                 "extra_groups": list(client.groups)}
    elif os.geteuid() != client.uid:
        raise PermissionError(f"this daemon (uid {os.geteuid()}) cannot run a program as uid {client.uid}")
    return argv, creds


def run_killpath(client: Client, why: str) -> None:
    """Start the holder's killpath program as its user; a thread reaps it so no zombie is left."""
    try:
        argv, creds = killpath_command(client)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # type: ignore[call-overload]
                                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, cwd="/",
                                env=KILLPATH_ENV, **creds)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("killpath %s for pid %d (uid %d) failed to start: %s", (client.killpath or ["?"])[0], client.pid,
                  client.uid, exc)
        return
    log.warning("ran killpath %s for pid %d (%s) as uid %d: %s", client.killpath[0] if client.killpath else "?",
                client.pid, client.name, client.uid, why)
    threading.Thread(target=proc.wait, name="killpath-reaper", daemon=True).start()
