"""The tests mirror the source tree: ``pkg/sub/foo.py`` is tested in
``tests/pkg/sub/test_foo.py``, so a module's direct tests are found by its name."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "adapters", "policies", "registry_stub")
#: Files that hold no behaviour of their own to test.
NOT_MIRRORED = frozenset({"__init__.py", "__main__.py"})


def modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in NOT_MIRRORED
    )


def mirror(module: Path) -> Path:
    return Path("tests") / module.parent / f"test_{module.name}"


def test_the_packages_have_modules() -> None:
    """A moved root would otherwise make the mirror check pass on nothing."""
    assert len(modules()) > 50


@pytest.mark.parametrize("module", modules(), ids=str)
def test_every_module_has_a_mirrored_test_file(module: Path) -> None:
    assert (ROOT / mirror(module)).is_file(), f"{mirror(module)} is missing"


def test_every_test_package_is_importable() -> None:
    """Each test folder has an ``__init__.py``, so same-named test files differ."""
    folders = {mirror(module).parent for module in modules()}
    missing = [
        str(f) for f in sorted(folders) if not (ROOT / f / "__init__.py").is_file()
    ]
    assert missing == []
