"""What the daemon loads at start: the checksum's C extension without the crc32c package's metadata
machinery, and no sanlock compatibility modules unless their socket is configured (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import lockengine.daemon.main
from lockengine import crc
value = crc.checksum(b"123456789")
print(json.dumps({"c": crc.IMPLEMENTATION, "agrees": value == crc.checksum_python(b"123456789"),
                  "metadata": "importlib.metadata" in sys.modules,
                  "compat": any(m.startswith("lockengine.daemon.sanlock") for m in sys.modules)}))
"""


def test_the_daemon_loads_only_what_it_needs_at_idle() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"c": "c", "agrees": True, "metadata": False, "compat": False}
