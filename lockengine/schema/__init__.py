"""The JSON Schema of /etc/lockengine/lockengine.conf, shipped in the package.

The file is self-contained (draft 2020-12, no external references) so the Ansible roles can validate
their variables with the very same file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "lockengine.schema.json"


def schema_text() -> str:
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _schema() -> str:
    return schema_text()


def load_schema() -> dict[str, Any]:
    """A fresh copy of the configuration schema (callers may modify it)."""
    schema: dict[str, Any] = json.loads(_schema())
    return schema
