"""The public API: every exported name resolves, whatever was imported before, without heavy imports."""
import subprocess
import sys

import reindex


def test_every_public_name_resolves_to_what_it_says():
    import reindex.build  # noqa: F401  (a submodule import must not shadow a public function)
    import reindex.export  # noqa: F401

    assert callable(reindex.build_run) and reindex.build_run.__name__ == "build"
    assert callable(reindex.export_run) and reindex.export_run.__name__ == "export"
    for name in reindex.__all__:
        assert getattr(reindex, name) is not None


def test_unknown_name_is_an_attribute_error():
    try:
        reindex.nothing_here
    except AttributeError as e:
        assert "nothing_here" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_import_reindex_and_cli_stay_light():
    code = "import sys, reindex, reindex.cli; print(sorted(m for m in ('torch', 'pyarrow', 'ray', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
