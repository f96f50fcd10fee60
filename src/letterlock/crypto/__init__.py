"""Sealing: account key pairs, password/recovery wrapping and sealed blobs.

A leaf library: it performs no I/O and knows nothing of storage, services or
protocols. See DESIGN.md, "Crypto: sealing".
"""
