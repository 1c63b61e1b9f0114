"""Litestar route handlers, one module per resource."""
