# /// script
# requires-python = ">=3.12"
# dependencies = ["cookiecutter>=2.6", "requests>=2.32"]
# ///
"""Bake the template with its defaults and serve the site locally: no services needed.

    uv run scripts/demo.py                # bakes into ./demo-site, then serves http://127.0.0.1:8000/
    uv run scripts/demo.py --port 8001 --output /tmp/my-demo
    uv run scripts/demo.py --smoke-test   # set up, start, log in once, stop (used by the test suite)

Re-running reuses an existing demo folder (delete it for a fresh bake).

The metadata block above makes `uv run` give this script its own small environment (cookiecutter
and requests), not the template's test toolchain; the site gets only its runtime dependencies,
at the versions in its uv.lock.
"""

import argparse
import importlib.metadata
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent


# Runs in the site's own virtualenv: migrate SQLite, make (or reset) the admin, serve. One process,
# so Django and Wagtail are imported once rather than three times.
SERVE = """
import os
import django
from django.core.management import call_command

django.setup()
from django.contrib.auth import get_user_model

call_command("migrate", interactive=False, verbosity=0)
User = get_user_model()
user = User.objects.filter(username="admin").first()
user = user or User.objects.create_superuser("admin", "admin@example.com", None)
user.set_password(os.environ["DEMO_PASSWORD"])
user.save()
print(os.environ["DEMO_BANNER"], flush=True)
call_command("runserver", os.environ["DEMO_ADDRESS"], use_reloader=False, skip_checks=True)
"""


def run(cmd, cwd, env=None):
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def smoke_test(base, password):
    session = requests.Session()
    assert session.get(base + "/", timeout=10).status_code == 200
    login = session.get(base + "/admin/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    response = session.post(
        base + "/admin/login/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": base + "/admin/login/"},
        timeout=30,
    )
    assert response.status_code == 200 and "Dashboard" in response.text, "admin login failed"
    print("smoke test passed: home page and admin login work")
    tools = sorted({d.metadata["Name"].lower() for d in importlib.metadata.distributions()})
    print(f"demo environment: {' '.join(tools)}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--output", default="demo-site", help="folder for the baked site (default ./demo-site)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--smoke-test", action="store_true", help="start, check, stop")
    args = parser.parse_args()

    uv = shutil.which("uv") or sys.exit("uv is needed: https://docs.astral.sh/uv/ (pip install uv)")
    output = Path(args.output).resolve()
    project = output / "wagtail_site"
    if project.exists():
        print(f"Reusing {project} (delete {output} for a fresh bake)")
    else:
        # TEMPLATE_QUIET: the post-gen hook's "next steps" are what this script does next.
        os.environ["TEMPLATE_QUIET"] = "1"
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output)))

    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
    }
    # Prefer an installed Python 3.13 (e.g. pyenv's) to letting uv download one.
    pyenv = Path(env.get("PYENV_ROOT", Path.home() / ".pyenv"))
    local = sorted(pyenv.glob("versions/3.13*/bin/python3.13"))
    if "UV_PYTHON" not in env and local:
        env["UV_PYTHON"] = str(local[-1])
    # What the site needs to run, at its locked versions; no test or lint tools.
    run([uv, "sync", "--quiet", "--locked", "--no-dev"], cwd=project, env=env)
    python = str(project / ".venv" / "bin" / "python")

    password = secrets.token_urlsafe(12)
    base = f"http://127.0.0.1:{args.port}"
    banner = f"\n  Site:   {base}/\n  Admin:  {base}/admin/   user: admin   password: {password}\n"
    env |= {
        "DJANGO_SETTINGS_MODULE": f"{project.name}.settings.dev",
        "DEMO_PASSWORD": password,
        "DEMO_BANNER": banner,
        "DEMO_ADDRESS": f"127.0.0.1:{args.port}",
    }
    print("$ migrate, create the admin user, runserver (one process: Django starts once)")
    server = [python, "-c", SERVE]
    if not args.smoke_test:
        os.chdir(project)
        os.execve(python, server, env)
    process = subprocess.Popen(server, cwd=project, env=env)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            try:
                requests.get(base + "/healthz/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        smoke_test(base, password)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
