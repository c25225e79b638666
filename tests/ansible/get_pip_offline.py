"""Offline stand-in for ansible-test's get-pip-<version>.py bootstrap script.

ansible-test downloads that script from a host this machine cannot reach, unless it finds it in its cache
($HOME/.ansible/test/cache/get_pip_<version>.py). test_sanity.py puts this file there. ansible-test runs it
as __main__ with pip-install arguments: bootstrap pip from the standard library's ensurepip wheel, then
let that pip install what was asked (from the package index pip is configured for).
"""

from __future__ import annotations

import ensurepip
import os
import runpy
import sys

ensurepip.bootstrap(upgrade=True, default_pip=True)
# ensurepip points PIP_CONFIG_FILE at os.devnull; the machine's pip configuration (index, CA) is needed.
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
