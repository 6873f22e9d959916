"""Operations on a store, one module per runbook task; the CLI only parses and prints.

Every function here works through the store contract (`ranvier.stores.base`), so each
task runs the same way on every adapter.
"""
