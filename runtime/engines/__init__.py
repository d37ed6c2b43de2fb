"""Engines: one module per backend, opened through the backend table."""
