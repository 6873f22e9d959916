"""`open_store`: the URL decides, and a bad one says what to change (issue 14, item 7)."""

from __future__ import annotations

import pytest

from ranvier import InvalidInput, open_store
from ranvier.stores.url import resolve_store_url


@pytest.mark.parametrize("url", ["", "   "])
async def test_an_empty_url_is_refused_not_the_default_store(url: str) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        await open_store(url)


def test_no_url_means_the_environment_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANVIER_STORE_URL", "memory://")
    assert resolve_store_url(None) == "memory://"
    monkeypatch.setenv("RANVIER_STORE_URL", "")
    assert resolve_store_url(None) == "sqlite:///ranvier.db"


async def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="redis\\+cluster://"):
        await open_store("mysql://db/x")
