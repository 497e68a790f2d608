"""The engine: claiming, leases, fencing, retries, cancellation, shutdown, the event sink."""
