"""Pure data and rules of the runtime: tasks, events, errors. No I/O lives here."""
