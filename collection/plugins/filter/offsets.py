# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lease_offset: an offset as sanlock writes it (bytes, or whole MiB with an M suffix) -> bytes.

The roles compare offsets in their preflight checks; the modules use the same rule (module_utils/common.py).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_OFFSET_RE = re.compile(r"^\s*(\d+)\s*([Mm]?)\s*$")
MIB = 1024 * 1024


def lease_offset(value, option="offset"):
    match = _OFFSET_RE.match(str(value))
    if not match or isinstance(value, bool):
        raise AnsibleFilterError(
            "%s: %r is not an offset; give bytes (1048576) or MiB with an M suffix (1M)" % (option, value))
    return int(match.group(1)) * (MIB if match.group(2) else 1)


class FilterModule(object):
    def filters(self):
        return {"lease_offset": lease_offset}
