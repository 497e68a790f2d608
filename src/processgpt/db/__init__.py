"""The Postgres adapter: the only package that holds SQL."""
