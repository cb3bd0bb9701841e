"""PERIAN Job API: wire models, status vocabulary and the async client."""
