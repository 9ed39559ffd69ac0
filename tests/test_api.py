"""The public API: every exported name resolves, whatever was imported before, without heavy imports."""
import importlib

import pytest

import reindex


def test_every_public_name_resolves_to_what_it_says():
    import reindex.commands.build  # noqa: F401  (a submodule import must not shadow a public function)
    import reindex.commands.export  # noqa: F401

    assert callable(reindex.build_run) and reindex.build_run.__name__ == "build"
    assert callable(reindex.export_run) and reindex.export_run.__name__ == "export"
    for name, (module, attribute) in reindex._EXPORTS.items():
        assert getattr(reindex, name) is getattr(importlib.import_module(f"reindex.{module}"), attribute), name


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="nothing_here"):
        _ = reindex.nothing_here
