"""Sharing with departments: agreements, scoped grants, tokens (later work)."""
