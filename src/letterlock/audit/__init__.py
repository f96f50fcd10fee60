"""The verifiable audit log: a closed event vocabulary, an RFC 9162-style Merkle log
with signed tree heads, inclusion and consistency proofs. A leaf library."""
