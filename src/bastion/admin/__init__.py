"""Operator and customer use cases shared by the CLI and the dashboard (one implementation
of "revoke a key", whichever door is used)."""
