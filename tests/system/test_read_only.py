"""A write refused by a read-only device says "PATH is read-only" (EROFS), not EPERM (-1) without a path."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support.daemons import REPO, env_for


def test_direct_init_on_a_read_only_device(loop_device: Any) -> None:
    dev = str(loop_device())
    subprocess.run(["blockdev", "--setro", dev], check=True)
    try:
        proc = subprocess.run([sys.executable, "-m", "lockengine", "direct", "init", "-s", f"LS:0:{dev}:0", "--json"],
                              cwd=REPO, env=env_for("/"), capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        err = json.loads(proc.stdout)["error"]
        assert (err["name"], err["code"]) == ("EROFS", -30), err
        assert f"{dev} is read-only" in err["message"], err
        assert "Traceback" not in proc.stderr
    finally:
        subprocess.run(["blockdev", "--setrw", dev], check=True)
