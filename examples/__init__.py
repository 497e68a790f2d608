"""Example agents: run one with ``processgpt worker --agent NAME --executor examples.MODULE:CLASS``
from the repository root (see the README's "Your own agent")."""
