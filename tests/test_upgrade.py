"""Layer 1, bake: keeping a site on the template. cruft itself, on a local git repository of the
template, does what the README's "Upgrading a baked site" promises:

- a bake is deterministic (same answers + template commit -> same tracked files), so a pristine
  bake's `cruft diff` is empty and `cruft check` knows the commit it was made from;
- a template commit that changes generated files (dev settings and gunicorn.conf.py, one of
  them edited by the site on other lines) and drops one is applied by `cruft update` with exit
  0, no `.rej`/`.orig`, the site's own edits kept;
- a real conflict (both changed the same line) looks the way the README says it does.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SLUG, TEMPLATE, check

BIN = Path(sys.executable).parent
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def template_repository(path):
    """A git repository holding this checkout's template as it is now (uncommitted edits too)."""
    shutil.copytree(TEMPLATE, path, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "test-artifacts", "*_cache", "__pycache__", "demo-site"))  # fmt: skip
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "template v1")
    return path


def git(cwd, *args):
    return check(["git", *map(str, args)], cwd=cwd, env=os.environ | GIT_IDENTITY).stdout


def cruft(home, *args, cwd=None):
    """The cruft command with a private HOME (no user cookiecutter config, no replay files)."""
    return subprocess.run(
        [str(BIN / "cruft"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=os.environ | GIT_IDENTITY | {"HOME": str(home), "COLUMNS": "200"},
    )


def untracked_leftovers(site):
    return sorted(
        str(p.relative_to(site)) for p in site.rglob("*") if p.suffix in (".rej", ".orig")
    )


@pytest.fixture
def baked_site(tmp_path):
    """cruft create from a local template repository, committed as a site would be."""
    home = tmp_path / "home"
    home.mkdir()
    template = template_repository(tmp_path / "template")
    created = cruft(home, "create", "--no-input", "--output-dir", tmp_path / "sites", template)
    assert created.returncode == 0, created.stdout + created.stderr
    site = tmp_path / "sites" / SLUG
    git(site, "init", "-q", "-b", "main")
    git(site, "add", "-A")
    git(site, "commit", "-qm", "Bake from the template")
    return home, template, site


def test_a_pristine_bake_has_no_cruft_diff_and_knows_its_commit(baked_site):
    home, template, site = baked_site
    diff = cruft(home, "diff", "--exit-code", cwd=site)
    assert diff.returncode == 0 and diff.stdout.strip() == "", diff.stdout + diff.stderr
    checked = cruft(home, "check", cwd=site)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The template moves on: check now says so (a plain bake + `cruft link` could not tell).
    (template / "NEWS.txt").write_text("v2\n")
    git(template, "add", "-A")
    git(template, "commit", "-qm", "template v2")
    assert cruft(home, "check", cwd=site).returncode != 0
    # The dev secret is in the git-ignored .env, not in a tracked file.
    assert ".env" in git(site, "status", "--porcelain", "--ignored")
    assert "DJANGO_DEV_SECRET_KEY=" in (site / ".env").read_text()
    assert not (git(site, "ls-files", "--", ".env")).strip()


def replace_line(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))


def test_cruft_update_applies_template_changes_next_to_the_sites_edits(baked_site):
    home, template, site = baked_site
    # The site's own work: another line of gunicorn.conf.py, and a file of its own.
    replace_line(site / "gunicorn.conf.py", "keepalive = 5\n", "keepalive = 7  # our LB\n")
    (site / "notes.txt").write_text("ours\n")
    git(site, "add", "-A")
    git(site, "commit", "-qm", "Our work")

    # The template moves on: two generated files change (one of them the dev settings that used
    # to hold a random key), and one is dropped.
    generated = template / "{{cookiecutter.project_slug}}"
    replace_line(generated / "gunicorn.conf.py", "\ntimeout = 30\n", "\ntimeout = 25\n")
    dev = generated / "{{cookiecutter.project_slug}}/settings/dev.py"
    dev.write_text(dev.read_text() + "\n# template v2\n")
    (generated / "Procfile").unlink()
    git(template, "add", "-A")
    git(template, "commit", "-qm", "template v2")

    updated = cruft(home, "update", "--skip-apply-ask", cwd=site)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "Failed" not in updated.stdout + updated.stderr, updated.stdout + updated.stderr
    gunicorn_conf = (site / "gunicorn.conf.py").read_text()
    assert "timeout = 25\n" in gunicorn_conf and "keepalive = 7  # our LB\n" in gunicorn_conf
    assert (site / SLUG / "settings/dev.py").read_text().endswith("# template v2\n")
    assert not (site / "Procfile").exists()
    assert (site / "notes.txt").read_text() == "ours\n"
    assert untracked_leftovers(site) == []
    assert "<<<<<<<" not in gunicorn_conf
    # Up to date now, and the update is an ordinary change to review and commit.
    assert cruft(home, "check", cwd=site).returncode == 0
    status = git(site, "status", "--porcelain")
    assert "gunicorn.conf.py" in status and ".cruft.json" in status


def test_a_real_conflict_is_left_as_the_readme_describes(baked_site):
    home, template, site = baked_site
    replace_line(site / "gunicorn.conf.py", "\ntimeout = 30\n", "\ntimeout = 60\n")
    git(site, "commit", "-qam", "Our timeout")
    replace_line(
        template / "{{cookiecutter.project_slug}}/gunicorn.conf.py",
        "\ntimeout = 30\n",
        "\ntimeout = 25\n",
    )
    git(template, "commit", "-qam", "template v2")

    updated = cruft(home, "update", "--skip-apply-ask", cwd=site)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    text = (site / "gunicorn.conf.py").read_text()
    # What the README says: conflict markers in the file, "both modified" (UU) in git status,
    # no .rej file; resolve, `git add`, commit.
    assert "<<<<<<< ours\ntimeout = 60\n=======\ntimeout = 25\n>>>>>>> theirs\n" in text
    assert "UU gunicorn.conf.py" in git(site, "status", "--porcelain")
    assert untracked_leftovers(site) == []
    readme = (TEMPLATE / "README.md").read_text()
    for promise in ("<<<<<<< ours", "git status", "both modified", "git add"):
        assert promise in readme, promise
