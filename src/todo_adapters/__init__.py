"""Adapters that implement the domain's ports: in-memory, SQL, auth, rate limits."""
