"""Outgoing e-mail through an outbox: queued in the same transaction as the change that causes
it, sent after commit, retried on failure, never lost. Messages carry links, never identifiers."""
