"""Give the project a development secret key in .env, drop folders emptied by excluded files, show
next steps."""

import os
import secrets
import tempfile
from pathlib import Path

project = Path.cwd()

# The random key goes into the git-ignored .env, never into a tracked file: a bake is then the
# same for the same answers and template commit (cruft diff/update see no change). An existing
# .env (baking over a project with -f) is the site's own and stays as it is.
dotenv = project / ".env"
if not dotenv.exists():
    dotenv.write_text(
        "# Development only (settings/dev.py); written when this project was made. Never commit it.\n"
        "# Production ignores this key and needs DJANGO_SECRET_KEY (see .env.example).\n"
        f"DJANGO_DEV_SECRET_KEY={secrets.token_urlsafe(50)}\n"
    )

# Files an option excludes are skipped by name; ci=none leaves .github/workflows empty. Only
# these folders are touched, so re-baking over a project (-f) never prunes its .git or .venv.
for folder in (project / ".github" / "workflows", project / ".github"):
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()

# Next steps are for a person who just baked. Not printed for scripts/demo.py (which runs them
# itself and sets TEMPLATE_QUIET=1), nor for the throwaway bakes `cruft diff` and `cruft update`
# make in a fresh temporary folder (cruft puts the template commit in the context).
cruft = bool({{ cookiecutter.get("_commit", "") | tojson }})
throwaway = project.parent.parent == Path(tempfile.gettempdir()).resolve()
if not os.environ.get("TEMPLATE_QUIET") and not (cruft and throwaway):
    print(f"""
Your Wagtail site is in {project}

  cd {project.name}
  uv sync
  uv run python manage.py migrate
  uv run python manage.py createsuperuser
  uv run python manage.py runserver

Then open http://127.0.0.1:8000/ (the admin is at /admin/). README.md explains production.
""")
