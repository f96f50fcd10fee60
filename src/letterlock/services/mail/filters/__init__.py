"""Mail filters (Sieve, RFC 5228): each account's scripts, stored sealed in its
region (scripts.py), run at delivery where the server may read them (running.py), and
the messages they send (messages.py)."""
