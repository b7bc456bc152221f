"""The layer contract (``.importlinter``): each app imports only from the layers below it, and
nothing imports the demo. ``make test`` runs it before the suite; these tests make sure it
holds for the tree and that it would catch the import that dodges a cycle inside a function."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(cwd / ".importlinter")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_apps_keep_the_layer_contract():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def _skeleton(tmp_path: Path) -> Path:
    """Empty packages named as the contract's, with the project's own contract file."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    for name in config["importlinter"]["root_packages"].split():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / ".importlinter").write_text((ROOT / ".importlinter").read_text())
    return tmp_path


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    tree = _skeleton(tmp_path)
    (tree / "trials" / "models.py").write_text("")
    (tree / "core" / "audit.py").write_text(
        "def record():\n    from trials import models  # dodges a cycle\n    return models\n")
    result = _lint(tree)
    assert result.returncode == 1
    assert "core is not allowed to import trials" in result.stdout
    assert "core.audit -> trials.models" in result.stdout


def test_importing_the_demo_breaks_the_contract(tmp_path):
    tree = _skeleton(tmp_path)
    (tree / "demo" / "data.py").write_text("")
    (tree / "api" / "views.py").write_text("from demo import data\n")
    result = _lint(tree)
    assert result.returncode == 1
    assert "api.views -> demo.data" in result.stdout
