"""Notifications of suspected drug-related deaths and non-fatal overdoses, and the people they
are about: intake, linking, identifiers (encrypted), reveal, the case list."""
