"""Rendering: consoles, tables, live views and machine-readable output formats."""
