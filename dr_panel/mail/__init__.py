"""Outgoing e-mail through an outbox: queued in the same transaction as the change that causes
it, sent after commit, retried on failure, never lost. Messages carry links, never identifiers.

``messages`` (what a message may say: links, the identifier guard), ``outbox`` (queue, claim,
send, erase secret bodies), ``worker`` (who delivers in this process), ``transports`` (folder,
SMTP), ``services`` (the public names other packages import)."""
