"""The JSON API v1: ``dr_panel.api.v1`` registers every domain's API
(``dr_panel/<domain>/api.py``) under ``/api/v1`` and serves the OpenAPI document generated from
their models."""
