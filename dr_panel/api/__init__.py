"""JSON API v1: the same services and access rules as the pages, with bearer tokens."""
