"""The Execution API: HTTP routes, authentication, errors, live streams."""
