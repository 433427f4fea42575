"""HTTP only: blueprints per resource, request parsing, and the error mapping."""
