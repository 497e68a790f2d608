"""Tools agents can call: MCP servers (:mod:`processgpt.tools.mcp`; which servers a task may
use, :mod:`processgpt.tools.mcp_config`; the network guard of tenants' URLs,
:mod:`processgpt.tools.netguard`).

This layer sits between the agents and the runtime: agents import tools, tools never import
agents.
"""
