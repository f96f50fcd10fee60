"""Pure MIME analysis of RFC 5322 messages: summaries computed at delivery, and the
structures IMAP serves from them. A leaf library: bytes in, values out, no I/O."""
