"""Transparency: the public report and the warrant canary, computed from recorded
decisions, and the access feed that shows an owner what the audit log holds about
their account."""
