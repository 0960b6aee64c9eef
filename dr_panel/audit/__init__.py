"""The tamper-evident audit log: every sign-in, refusal, account change, reveal and export."""
