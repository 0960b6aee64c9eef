"""The release of this code: shown in the pages' footer and the OpenAPI document."""

__version__ = "0.1.0"
