"""Persistence stores: the contract, its rules and the adapters."""
