"""Agents: the A2A executor adapter, the orchestrator registry and the built-in agents."""
