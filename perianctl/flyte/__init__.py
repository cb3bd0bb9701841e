"""Flyte side: template loading, inputs, rendering, translation to PERIAN, phases, the connector."""
