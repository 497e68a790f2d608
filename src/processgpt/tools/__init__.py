"""Tools agents can call: MCP servers (:mod:`processgpt.tools.mcp`).

This layer sits between the agents and the runtime: agents import tools, tools never import
agents.
"""
