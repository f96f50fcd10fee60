"""Mail: delivery into sealed mailboxes, reading them, sealing, the outbound queue,
sender checks, change notification, import/export."""
