"""Layer 2, run: each combination's project passes Django's deployment checks, migrates on real
Postgres, collects static files, and passes its own test suite.

One combination per (python_version, storage_backend, error_reporting): test_bake proves the other
options (use_docker, ci) leave every file that runs byte-identical.
"""

import json

import pytest
from conftest import RUNTIME_COMBOS, check, combo_id


@pytest.mark.slow
@pytest.mark.parametrize("combo", RUNTIME_COMBOS, ids=combo_id)
def test_combination_runs_in_production_settings(make_project, postgres_url, combo):
    project = make_project(**combo)

    deploy = project.manage("check", "--deploy", "--fail-level", "WARNING")
    assert "System check identified no issues (0 silenced)." in deploy.stdout + deploy.stderr

    project.manage("makemigrations", "--check", "--dry-run")
    project.manage("migrate", "--noinput", "-v0")
    assert "[X] 0002_create_homepage" in project.manage("showmigrations", "home").stdout

    # Every static file is found exactly once (no finder sees the project's static/ twice).
    collected = project.manage("collectstatic", "--noinput", "-v1")
    assert " static files copied" in collected.stdout
    assert "skipped due to conflict" not in collected.stdout + collected.stderr
    manifest = json.loads((project.path / "staticfiles" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["wagtailadmin/css/core.css"]
    assert hashed != "wagtailadmin/css/core.css"
    for suffix in ("", ".gz", ".br"):
        assert (project.path / "staticfiles" / (hashed + suffix)).is_file()

    # The project's own suite, on the same Postgres server (pytest-django makes test_<name>).
    own = check(
        [str(project.venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"],
        cwd=project.path,
        env={k: v for k, v in project.env.items() if k != "DJANGO_SETTINGS_MODULE"},
    )
    assert " passed" in own.stdout and "failed" not in own.stdout
