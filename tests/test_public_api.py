"""The public surface: `ranvier.__all__` is exact, and `import ranvier` needs no extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import ranvier


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def test_every_exported_name_resolves() -> None:
    lazy = ranvier._LAZY
    for name in ranvier.__all__:
        module = lazy.get(name)
        if module is None:
            assert getattr(ranvier, name) is not None, name
        elif _module_exists(module):  # adapters written by later issues join when they exist
            value = getattr(ranvier, name)
            assert value is getattr(importlib.import_module(module), name)
            assert value.__name__ == name


def test_lazy_names_are_exported_and_nothing_else_is_lazy() -> None:
    assert set(ranvier._LAZY) <= set(ranvier.__all__)
    assert all(module.startswith("ranvier.stores.") for module in ranvier._LAZY.values())


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    try:
        ranvier.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("ranvier.NoSuchThing should not exist")


def test_all_is_sorted_unique_and_public() -> None:
    names = ranvier.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert all(not n.startswith("_") or n == "__version__" for n in names)


def test_every_public_class_and_function_of_ranvier_is_exported() -> None:
    public = {
        name
        for name, value in vars(ranvier).items()
        if not name.startswith("_")
        and not isinstance(value, type(ranvier))
        and str(getattr(value, "__module__", "")).startswith("ranvier")
    }
    assert public <= set(ranvier.__all__)


def test_every_error_class_is_exported() -> None:
    import ranvier.errors

    errors = {
        name
        for name, value in vars(ranvier.errors).items()
        if isinstance(value, type) and issubclass(value, ranvier.RanvierError)
    }
    assert errors <= set(ranvier.__all__), errors - set(ranvier.__all__)


BLOCKED_IMPORT = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys

    BLOCKED = {"asyncpg", "psycopg", "psycopg_pool", "redis", "hiredis"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked by the test", name=name)
            return None

    sys.meta_path.insert(0, Block())

    import ranvier

    async def main():
        async with await ranvier.open_store("memory://") as store:
            await store.append(ranvier.PersistenceEnvelope(
                trace_id="t", circuit="c", schematic_version="1", step=0, payload={"ok": 1}))
            trace = await store.load("t")
            assert trace.events[0].payload == {"ok": 1}
        try:
            await ranvier.open_store("redis://127.0.0.1:1")
        except ranvier.InvalidInput as exc:
            assert "pip install 'ranvier[redis]'" in str(exc), exc
        else:
            raise AssertionError("redis:// should need the redis extra")

    asyncio.run(main())
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("ok")
    """
)


def test_import_ranvier_needs_no_optional_driver() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
