# -*- coding: utf-8 -*-
# Copyright: lockengine developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lease_offset: an offset as sanlock writes it (bytes, or whole MiB with an M suffix) -> bytes.

The roles compare offsets in their preflight checks; the rule is the modules' (module_utils/common.py).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.lockengine.cluster.plugins.module_utils.common import offset_bytes


def lease_offset(value, option="offset"):
    try:
        return offset_bytes(value, option)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"lease_offset": lease_offset}
