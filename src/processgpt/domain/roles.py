"""Who may do what: the role an API key or token carries.

Roles are ordered: ``operator`` > ``admin`` > ``member``. A role allows everything the roles
below it allow.

- ``member``: run the tenant's work: tasks, processes, chats, streams, answers, feedback, A2A;
  read the tenant's agent profiles and MCP servers.
- ``admin``: a tenant administrator: also manage the tenant's API keys, agent profiles and MCP
  servers.
- ``operator``: runs the deployment: also the operator-only settings (tenants and their
  limits, keys of any tenant). Commands on worker hosts are never an API setting: they come
  from the operator's configuration files only.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OPERATOR = "operator"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OPERATOR: 2}
