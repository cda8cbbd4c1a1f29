"""Adapters around the pure core, one package per technology."""
