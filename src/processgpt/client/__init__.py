"""Python clients of the Execution API (HTTP + SSE, WebSocket chat)."""
