"""Where a client finds lockengined and which protocol version they speak (no imports: the CLI's
start-up path reads these without loading the daemon's protocol module)."""

from __future__ import annotations

VERSION = 1
# Where a client finds the daemon: $LOCKENGINE_RUN_DIR (default /run/lockengine) / lockengined.sock.
DEFAULT_RUN_DIR = "/run/lockengine"
RUN_DIR_ENV = "LOCKENGINE_RUN_DIR"
SOCKET_NAME = "lockengined.sock"
