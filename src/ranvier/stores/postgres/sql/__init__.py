"""Every SQL statement of the PostgreSQL adapter, as named templates, by concept:
`traces` (a trace's life), `leases`, `ledger` (compensation keys), `maintenance`
(counts, purge, restore, describe); `names` holds the table names and time fragments.

Table names are filled in from a table prefix that `validate_prefix` has checked to be
a plain lowercase SQL identifier; values always travel as parameters. Times are the
server's `now()` truncated to milliseconds, so that `*_ms` values read back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ranvier.stores.postgres.sql import leases, ledger, maintenance, traces
from ranvier.stores.postgres.sql.names import (
    DEFAULT_PREFIX,
    MAX_PREFIX_LENGTH,
    MAX_TIME_MS,
    table_names,
    validate_prefix,
)

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_PREFIX_LENGTH",
    "MAX_TIME_MS",
    "Statements",
    "render",
    "table_names",
    "validate_prefix",
]


@dataclass(frozen=True, slots=True)
class Statements:
    """The statements with one prefix's table names filled in (each field is the
    lowercase name of a template in one of the modules)."""

    append: str
    append_one: str
    append_one_fenced: str
    load: str
    load_many: str
    list_traces: str
    now_ms: str
    lock_trace: str
    resume: str
    complete: str
    complete_batch: str
    save_intervention: str
    count_by_status: str
    count_completed_before: str
    purge_batch: str
    delete_trace: str
    import_state: str
    import_events: str
    import_interventions: str
    describe: str
    stored_version: str
    acquire_lease: str
    acquire_lease_batch: str
    renew_lease: str
    release_lease: str
    get_lease: str
    list_lease_tokens: str
    raise_lease_token: str
    claim: str
    mark_compensated: str
    get_compensation: str
    release_compensation: str
    list_unfinished: str
    list_records: str
    import_record: str
    count_compensations: str
    purge_compensations: str


_MODULES = (traces, leases, ledger, maintenance)


def _template(name: str) -> str:
    found: list[str] = [
        template for m in _MODULES if isinstance(template := getattr(m, name, None), str)
    ]
    if len(found) != 1:
        raise LookupError(f"{len(found)} SQL templates are named {name}")
    return found[0]


def render(prefix: str) -> Statements:
    """Every statement for tables named `<prefix>_state`, `<prefix>_events`, ..."""
    names = table_names(prefix)
    return Statements(
        **{f.name: _template(f.name.upper()).format(**names) for f in fields(Statements)}
    )
