# /// script
# requires-python = ">=3.12"
# dependencies = ["cookiecutter>=2.6"]
# ///
"""Refresh the uv.lock files the template ships: one per dependency set.

    uv run scripts/lock.py              # after editing {{cookiecutter.project_slug}}/pyproject.toml
    uv run scripts/lock.py --upgrade    # also move every package to its newest allowed version

A baked site's pyproject.toml depends on python_version (requires-python), storage_backend
(django-storages) and error_reporting (sentry-sdk), so the template holds 2 x 2 x 2 locks, each
a file whose name renders to `uv.lock` for its own answers only. For each set this bakes the
template (with the lock it has now, so unchanged versions stay put), runs `uv lock` in the bake,
and stores the result with the project's name turned back into the template variable.
tests/test_bake.py fails when a lock no longer matches its pyproject.toml (`uv lock --check`).
"""

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
SETS = {
    "python_version": ["3.13", "3.12"],
    "storage_backend": ["filesystem", "s3"],
    "error_reporting": ["none", "sentry"],
}
# Baked under this name, which uv writes into the lock (normalised) and this script turns back
# into the template variable (the pre-gen hook refuses slugs that normalise differently).
PLACEHOLDER = "lock_placeholder_site"
NAME = "\"{{ cookiecutter.project_slug | replace('_', '-') }}\""


def lock_file_name(answers):
    condition = " and ".join(f"cookiecutter.{key} == '{value}'" for key, value in answers.items())
    return "{% if " + condition + " %}uv.lock{% endif %}"


def dependency_sets():
    return [dict(zip(SETS, values, strict=True)) for values in itertools.product(*SETS.values())]


def refresh(answers, upgrade):
    uv = shutil.which("uv") or sys.exit("uv is needed: https://docs.astral.sh/uv/")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(
            cookiecutter(
                str(TEMPLATE),
                no_input=True,
                output_dir=tmp,
                extra_context=answers
                | {"project_slug": PLACEHOLDER, "use_docker": "no", "ci": "none"},
            )
        )
        command = [uv, "lock", "--quiet", *(["--upgrade"] if upgrade else [])]
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        subprocess.run(command, cwd=project, env=env, check=True)
        text = (project / "uv.lock").read_text()
    quoted = '"' + PLACEHOLDER.replace("_", "-") + '"'
    assert text.count(quoted) == 1, f"expected the project's name once in the lock: {quoted}"
    assert "{{" not in text and "{%" not in text and "{#" not in text
    target = PROJECT_TEMPLATE / lock_file_name(answers)
    new = text.replace(quoted, NAME)
    changed = not target.exists() or target.read_text() != new
    target.write_text(new)
    return changed


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    args = parser.parse_args()
    os.environ["TEMPLATE_QUIET"] = "1"  # no "next steps" from the post-gen hook
    for answers in dependency_sets():
        changed = refresh(answers, args.upgrade)
        print(f"{'updated  ' if changed else 'unchanged'} {' '.join(answers.values())}")


if __name__ == "__main__":
    main()
