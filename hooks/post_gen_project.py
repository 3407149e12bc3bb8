"""Write a fresh development secret key, drop folders emptied by excluded files, show next steps."""

import secrets
from pathlib import Path

project = Path.cwd()
slug = {{ cookiecutter.project_slug | tojson }}

dev_settings = project / slug / "settings" / "dev.py"
dev_settings.write_text(
    dev_settings.read_text().replace("__DEV_SECRET_KEY__", secrets.token_urlsafe(50))
)

# Files an option excludes are skipped by name; ci=none leaves .github/workflows empty. Only
# these folders are touched, so re-baking over a project (-f) never prunes its .git or .venv.
for folder in (project / ".github" / "workflows", project / ".github"):
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()

print(f"""
Your Wagtail site is in {project}

  cd {project.name}
  uv sync
  uv run python manage.py migrate
  uv run python manage.py createsuperuser
  uv run python manage.py runserver

Then open http://127.0.0.1:8000/ (the admin is at /admin/). README.md explains production.
""")
