"""Transparency: the public report and the warrant canary, computed from recorded
decisions."""
