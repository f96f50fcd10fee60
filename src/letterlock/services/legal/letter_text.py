"""What a letter to the issuing authority says, from a matter and one of its
decisions: plain data for the templates (letters.py renders and signs it)."""

from __future__ import annotations

LETTER_KINDS = ("response", "production-certificate")
"""``response``: the answer to the issuing authority, with the legal basis of each
outcome; ``production-certificate``: the cover letter and certification of a
production package."""
