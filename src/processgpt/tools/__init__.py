"""Tools agents can call: MCP servers (the pool and calls, :mod:`processgpt.tools.mcp`, with
one connection in :mod:`~processgpt.tools.mcp_connection`, tools and results in
:mod:`~processgpt.tools.mcp_tools`, a stdio server's stderr in
:mod:`~processgpt.tools.mcp_stderr`; which servers a task may use,
:mod:`processgpt.tools.mcp_config`, with the env names tenants may set,
:mod:`~processgpt.tools.tenant_env`; what other executors see of them,
:mod:`~processgpt.tools.executor_view`; the network guard of tenants' URLs,
:mod:`processgpt.tools.netguard`).

This layer sits between the agents and the runtime: agents import tools, tools never import
agents.
"""
