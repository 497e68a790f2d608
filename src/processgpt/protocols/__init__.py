"""Pure encoders from the event log to wire protocols. No I/O."""
