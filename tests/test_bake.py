"""Layer 1, bake: every combination renders, lints clean, and bad answers are refused."""

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from conftest import (
    ALL_COMBOS,
    CHOICES,
    DEFAULTS,
    NON_RUNTIME_OPTIONS,
    SLUG,
    TEMPLATE,
    combo_id,
    project_files,
)

# Files that exist only because of an option; each combination must have exactly its own.
OPTIONAL_FILES = {
    "Dockerfile": ("use_docker", "yes"),
    ".dockerignore": ("use_docker", "yes"),
    "compose.yaml": ("use_docker", "yes"),
    ".github/workflows/ci.yml": ("ci", "github"),
    ".github/dependabot.yml": ("ci", "github"),
    f"{SLUG}/settings/sentry.py": ("error_reporting", "sentry"),
    "deploy/s3-bucket-policy.json": ("storage_backend", "s3"),
    "deploy/s3-lifecycle.json": ("storage_backend", "s3"),
}
# ...plus the site README, whose prose describes the Docker and CI files when they are there.
NON_RUNTIME_FILES = {
    path for path, (option, _) in OPTIONAL_FILES.items() if option in NON_RUNTIME_OPTIONS
} | {"README.md"}
LEFTOVER = re.compile(r"\{\{|\{%|\{#|cookiecutter")


def leftovers(path, text):
    if "cookiecutter" in text:
        return True
    if path.endswith(".html"):  # Django templates: their {% %} and {{ }} are meant to be there
        return False
    if path.startswith(".github/"):  # GitHub expressions ${{ ... }}
        text = re.sub(r"\$\{\{[^}]*\}\}", "", text)
    return bool(LEFTOVER.search(text))


@pytest.fixture(scope="module")
def baked(cookies_session):
    """All 32 combinations, baked once for this module with pytest-cookies."""
    results = {}
    for combo in ALL_COMBOS:
        result = cookies_session.bake(extra_context=combo)
        assert result.exit_code == 0, f"{combo}: {result.exception}"
        results[combo_id(combo)] = (combo, result.project_path, project_files(result.project_path))
    return results


@pytest.mark.parametrize("combo", ALL_COMBOS, ids=combo_id)
def test_every_combination_bakes_completely(baked, combo):
    _, path, files = baked[combo_id(combo)]
    assert path.name == SLUG
    for name, content in files.items():
        assert not leftovers(name, content.decode()), f"unrendered template syntax in {name}"
    for name, (option, value) in OPTIONAL_FILES.items():
        assert (name in files) == (combo[option] == value), f"{name} with {option}={combo[option]}"
    # No empty folders left behind by excluded files.
    assert not [p for p in path.rglob("*") if p.is_dir() and not any(p.iterdir())]
    pyproject = tomllib.loads(files["pyproject.toml"].decode())
    assert pyproject["project"]["requires-python"].startswith(f">={combo['python_version']}")
    deps = " ".join(pyproject["project"]["dependencies"])
    assert ("django-storages" in deps) == (combo["storage_backend"] == "s3")
    assert ("sentry-sdk" in deps) == (combo["error_reporting"] == "sentry")


@pytest.mark.parametrize("combo", ALL_COMBOS, ids=combo_id)
def test_every_combination_is_lint_clean(baked, combo):
    _, path, _ = baked[combo_id(combo)]
    for cmd in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *cmd], cwd=path, capture_output=True, text=True
        )
        assert result.returncode == 0, f"ruff {cmd[0]}:\n{result.stdout}{result.stderr}"


def test_docker_and_ci_options_change_nothing_that_runs(baked):
    """use_docker and ci add files nothing imports (and README prose); every other file is
    byte-identical.

    This is why the run layer runs one combination per (python_version, storage_backend,
    error_reporting) instead of all 32: the other 24 execute exactly the same files.
    """
    groups = {}
    for combo, _, files in baked.values():
        key = tuple(v for k, v in combo.items() if k not in NON_RUNTIME_OPTIONS)
        # .env: the one intended difference between any two bakes, the random dev secret key.
        runtime = {
            name: content
            for name, content in files.items()
            if name not in NON_RUNTIME_FILES and name != ".env"
        }
        groups.setdefault(key, []).append(runtime)
    assert len(groups) == 8
    for key, variants in groups.items():
        assert len(variants) == 4
        assert all(v == variants[0] for v in variants), f"{key}: runtime files differ"


def test_every_combination_needs_a_subset_of_the_shared_venv(baked):
    """The run layer installs the s3 + sentry dependencies once; others must need no more."""

    def deps(files):
        return set(tomllib.loads(files["pyproject.toml"].decode())["project"]["dependencies"])

    for python_version in ("3.12", "3.13"):
        full = next(
            files
            for combo, _, files in baked.values()
            if (combo["python_version"], combo["storage_backend"], combo["error_reporting"])
            == (python_version, "s3", "sentry")
        )
        for combo, _, files in baked.values():
            if combo["python_version"] == python_version:
                assert deps(files) <= deps(full)


LOCK_SETS = [
    {"python_version": p, "storage_backend": s, "error_reporting": e}
    for p in CHOICES["python_version"]
    for s in CHOICES["storage_backend"]
    for e in CHOICES["error_reporting"]
]


@pytest.mark.parametrize("answers", LOCK_SETS, ids=lambda a: "lock-" + "/".join(a.values()))
def test_every_bake_ships_a_uv_lock_that_matches_its_pyproject(tmp_path, answers):
    """One lock per dependency set in the template (scripts/lock.py refreshes them); a bake gets
    its own, named after its project, and `uv lock --check` (offline: it needs no resolution when
    the lock is current) fails the moment pyproject.toml and the lock disagree."""
    from conftest import bake

    path = bake(tmp_path, project_name="Harbour Arts", **answers)
    lock = tomllib.loads((path / "uv.lock").read_text())
    pyproject = tomllib.loads((path / "pyproject.toml").read_text())
    assert lock["requires-python"].replace(" ", "") == pyproject["project"]["requires-python"]
    (root,) = [p for p in lock["package"] if p.get("source") == {"virtual": "."}]
    assert root["name"] == "harbour-arts"
    uv = shutil.which("uv") or pytest.fail("uv is needed")
    result = subprocess.run(
        [uv, "lock", "--check", "--offline"], cwd=path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, "stale lock: run `uv run scripts/lock.py`\n" + result.stderr


def test_custom_answers_reach_the_project(tmp_path):
    from conftest import bake

    path = bake(
        tmp_path,
        project_name="Harbour Arts Centre",
        domain_name="www.harbourarts.org",
        time_zone="Europe/London",
        author_email="web@harbourarts.org",
        description='The "Harbour" arts centre',
    )
    assert path.name == "harbour_arts_centre"
    base = (path / "harbour_arts_centre/settings/base.py").read_text()
    assert 'TIME_ZONE = "Europe/London"' in base
    assert 'WAGTAIL_SITE_NAME = "Harbour Arts Centre"' in base
    assert (
        "www.harbourarts.org" in (path / "harbour_arts_centre/settings/production.py").read_text()
    )
    pyproject = tomllib.loads((path / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == 'The "Harbour" arts centre'
    assert pyproject["project"]["authors"][0]["email"] == "web@harbourarts.org"


def test_a_bake_is_deterministic_and_its_dev_key_is_only_in_dotenv(tmp_path):
    """Same answers, same template -> the same tracked files (so `cruft diff` of a pristine bake
    is empty and `cruft update` never conflicts with itself); each bake's random development key
    is in the git-ignored .env, which `cruft update` skips."""
    from conftest import bake

    bakes = [project_files(bake(tmp_path / str(n))) for n in range(2)]
    keys = []
    for files in bakes:
        key = re.fullmatch(
            r"(?:#[^\n]*\n)*DJANGO_DEV_SECRET_KEY=(\S{50,})\n", files.pop(".env").decode()
        ).group(1)
        keys.append(key)
        assert not [name for name, content in files.items() if key.encode() in content]
    assert keys[0] != keys[1]
    assert bakes[0] == bakes[1]
    assert ".env" in bakes[0][".gitignore"].decode().splitlines()
    assert {"*.rej", "*.orig"} <= set(bakes[0][".gitignore"].decode().splitlines())
    cruft = tomllib.loads(bakes[0]["pyproject.toml"].decode())["tool"]["cruft"]
    assert cruft["skip"] == [".env", "uv.lock"]
    dev = bakes[0][f"{SLUG}/settings/dev.py"].decode()
    assert 'env.str(\n    "DJANGO_DEV_SECRET_KEY", default="django-insecure-' in dev


BAD_ANSWERS = [
    ({"project_slug": "My-Site"}, "is not a lower-case Python identifier"),
    ({"project_slug": "2fast"}, "is not a lower-case Python identifier"),
    ({"project_slug": "class"}, "is a Python keyword"),
    ({"project_slug": "my__site"}, "has a double or trailing underscore"),
    ({"project_slug": "site_"}, "has a double or trailing underscore"),
    ({"project_slug": "wagtail"}, "would shadow the module"),
    ({"project_slug": "django"}, "would shadow the module"),
    ({"project_slug": "test"}, "would shadow the module"),
    ({"project_slug": "site"}, "would shadow the module"),
    ({"project_slug": "home"}, "would shadow the module"),
    ({"project_name": "   "}, "project_name is empty"),
    ({"author_email": "not-an-email"}, "is not an email address"),
    ({"domain_name": "https://example.com"}, "is not a lower-case host name"),
    ({"domain_name": "example.com/path"}, "is not a lower-case host name"),
    ({"domain_name": "Example.COM"}, "is not a lower-case host name"),
    ({"time_zone": "Mars/Olympus_Mons"}, "is not an IANA time zone name"),
    ({"time_zone": "../../etc/passwd"}, "is not an IANA time zone name"),
]


@pytest.mark.parametrize("answers, message", BAD_ANSWERS, ids=lambda a: str(a))
def test_bad_answers_are_refused_and_leave_nothing(tmp_path, answers, message):
    args = [f"{key}={value}" for key, value in answers.items()]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "-o",
            str(tmp_path),
            str(TEMPLATE),
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Nothing was written" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_choice_options_match_the_spec():
    assert {k: v for k, v in DEFAULTS.items()} == {
        "python_version": "3.13",
        "storage_backend": "filesystem",
        "use_docker": "yes",
        "ci": "github",
        "error_reporting": "none",
    }
    assert (TEMPLATE / "cookiecutter.json").exists()
