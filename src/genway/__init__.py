"""Genway: a multi-tenant API service for long AI generation jobs."""

__version__ = "0.1.0"
