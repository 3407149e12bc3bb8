"""Layer 1, bake: the files that run outside Python are valid, offline, for every bake.

- GitHub workflows (the template's own and each baked site's): YAML parses, check-jsonschema's
  vendored GitHub-workflow schema passes, and they do what they claim (services, versions, steps;
  the template's CI jobs select every test of the suite exactly once).
- Dockerfiles: hadolint at its strictest default; multi-stage, slim base of the chosen Python,
  non-root, uv, collectstatic at build, gunicorn, healthcheck; the build's throwaway settings
  really load the production settings.
- compose files: the Compose Specification schema (no Docker engine here), plus what the schema
  cannot see: pinned images, services and volumes that exist, credentials that agree, and an
  environment that satisfies the production settings.
- pre-commit config: pre-commit validates it, its pinned ruff and djLint are the versions this
  suite runs, and those hooks pass on a fresh bake; files follow .editorconfig.
- cookiecutter behaviour users rely on: --replay, and baking over an existing project.
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import CHOICES, SLUG, TEMPLATE, bake, check, free_port, project_files

BIN = Path(sys.executable).parent  # the template's own tools (root pyproject dev group)
COMBOS = [
    {"python_version": python, "storage_backend": storage}
    for python in CHOICES["python_version"]
    for storage in CHOICES["storage_backend"]
]


def combo_id(combo):
    return f"{combo['python_version']}/{combo['storage_backend']}"


@pytest.fixture(scope="module")
def bakes(tmp_path_factory):
    """One bake per python_version x storage_backend, with Docker files and the GitHub workflow."""
    return {
        combo_id(combo): (
            combo,
            bake(tmp_path_factory.mktemp("deploy"), use_docker="yes", ci="github", **combo),
        )
        for combo in COMBOS
    }


def tool(name, *args, cwd=None):
    return check([str(BIN / name), *map(str, args)], cwd=cwd, timeout=120)


def load_yaml(path):
    return yaml.safe_load(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# GitHub workflows


def test_every_workflow_parses_and_matches_the_github_schema(bakes):
    files = sorted((TEMPLATE / ".github" / "workflows").glob("*.y*ml"))
    assert files, "the template ships no workflow"
    files += [path / ".github/workflows/ci.yml" for _, path in bakes.values()]
    for path in files:
        workflow = load_yaml(path)
        assert isinstance(workflow, dict) and workflow["jobs"], path
    # The schema is vendored in check-jsonschema: no network.
    result = tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files)
    assert "ok -- validation done" in result.stdout


def supply_chain_files(bakes):
    """Every workflow the template ships or bakes, and each bake's Dependabot config."""
    files = sorted((TEMPLATE / ".github" / "workflows").glob("*.y*ml"))
    files += [path / ".github/workflows/ci.yml" for _, path in bakes.values()]
    return files, [path / ".github/dependabot.yml" for _, path in bakes.values()]


def test_workflows_pin_actions_and_images_and_hold_least_privilege(bakes):
    """Every action is pinned to a full commit SHA (the version as a comment), checkouts leave no
    credentials behind, no workflow grants anything by default and every job says what it needs,
    and service images are pinned by digest."""
    workflows, _ = supply_chain_files(bakes)
    for path in workflows:
        text = path.read_text()
        uses = re.findall(r"^\s*(?:- )?uses: (.+)$", text, flags=re.MULTILINE)
        assert uses, path
        for use in uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", use), (path, use)
        workflow = load_yaml(path)
        assert workflow["permissions"] == {}, path
        for name, job in workflow["jobs"].items():
            assert job.get("permissions") == {"contents": "read"}, (path, name)
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, (path, name)
            for service in job.get("services", {}).values():
                assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", service["image"]), path


def test_zizmor_finds_nothing_and_dependabot_updates_actions_and_uv(bakes):
    """zizmor (offline, default persona) on the template's workflow and every baked ci.yml and
    dependabot.yml; the Dependabot config passes its schema and covers actions and uv.lock."""
    workflows, dependabot = supply_chain_files(bakes)
    result = tool("zizmor", "--offline", "--no-progress", *workflows, *dependabot)
    assert "No findings to report" in result.stdout, result.stdout
    result = tool("check-jsonschema", "--builtin-schema", "vendor.dependabot", *dependabot)
    assert "ok -- validation done" in result.stdout
    for path in dependabot:
        updates = load_yaml(path)["updates"]
        assert {u["package-ecosystem"] for u in updates} == {"github-actions", "uv"}, path


def template_suite_job():
    workflow = load_yaml(TEMPLATE / ".github/workflows/test.yml")
    assert set(workflow[True]) >= {"push", "pull_request"}  # YAML 1.1 reads `on:` as True
    return workflow["jobs"]["suite"]


def test_template_ci_runs_the_suite_with_services_on_every_python():
    job = template_suite_job()
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    assert job["services"]["redis"]["image"].startswith("redis:")
    assert job["env"]["TEST_POSTGRES_URL"].startswith("postgres://postgres@127.0.0.1:5432/")
    steps = job["steps"]
    setup_python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert set(setup_python["with"]["python-version"].split()) == set(CHOICES["python_version"])
    assert any(s.get("run", "").startswith("uv run pytest ") for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"].rstrip("/") == "test-artifacts"


COLLECT = """
import json, sys, pytest

class Collect:
    def pytest_collection_finish(self, session):
        self.ids = [item.nodeid for item in session.items]

result = []
for args in json.loads(sys.argv[1]):
    plugin = Collect()
    code = pytest.main(["--collect-only", "-qq", "-n0", "-p", "no:cacheprovider", *args], plugins=[plugin])
    assert code == 0, (args, code)
    result.append(plugin.ids)
print("COLLECTED" + json.dumps(result))
"""


def collected(selections):
    """The test ids each selection (pytest arguments) collects, in one process."""
    result = check(
        [sys.executable, "-c", COLLECT, json.dumps(selections)], cwd=TEMPLATE, timeout=300
    )
    return [set(ids) for ids in json.loads(result.stdout.split("COLLECTED", 1)[1])]


def test_template_ci_jobs_together_run_every_test_exactly_once():
    """A test no job selects would never run in CI; one selected twice wastes a runner."""
    matrix = template_suite_job()["strategy"]["matrix"]["include"]
    selections = [shlex.split(entry["select"]) for entry in matrix]
    everything, *parts = collected([[], *selections])
    assert len(everything) > 100
    for part, args in zip(parts, selections, strict=True):
        assert part, f"the CI job with {args} selects no test"
    assert sum(len(part) for part in parts) == len(everything), "a test runs in two CI jobs"
    assert set().union(*parts) == everything, "tests no CI job runs"


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_site_workflow_lints_checks_and_tests_on_postgres_and_redis(bakes, combo):
    _, path = bakes[combo_id(combo)]
    jobs = load_yaml(path / ".github/workflows/ci.yml")["jobs"]
    assert "uvx pre-commit run --all-files" in " ".join(
        s.get("run", "") for s in jobs["lint"]["steps"]
    )

    test = jobs["test"]
    postgres, redis = test["services"]["postgres"], test["services"]["redis"]
    assert postgres["image"].startswith("postgres:") and redis["image"].startswith("redis:")
    database = urlsplit(test["env"]["DATABASE_URL"])
    assert (database.hostname, database.port) == ("127.0.0.1", 5432)
    assert database.path == f"/{postgres['env']['POSTGRES_DB']}"  # the database CI creates
    assert database.password == postgres["env"]["POSTGRES_PASSWORD"]
    assert test["env"]["REDIS_URL"].startswith("redis://127.0.0.1:6379/")
    assert "uv sync --locked" in [s.get("run") for s in test["steps"]]
    setup_uv = next(s for s in test["steps"] if s.get("uses", "").startswith("astral-sh/setup-uv"))
    assert setup_uv["with"]["python-version"] == combo["python_version"]
    script = "\n".join(s.get("run", "") for s in test["steps"])
    for command in (
        "manage.py check --deploy --fail-level WARNING",
        "manage.py makemigrations --check",
        "manage.py migrate",
        "manage.py collectstatic",
        f"gunicorn {SLUG}.wsgi",
        "/readyz/",
        "uv run pytest",
    ):
        assert command in script, command


@pytest.mark.slow
def test_site_workflow_test_job_passes_against_real_services(
    bakes, venv_for, postgres_url, redis_url, tmp_path
):
    """The s3 bake's CI deployment step, run as CI runs it (`uv run` -> the shared virtualenv)
    against this machine's Postgres and Redis: its environment passes check --deploy and the
    migrations check, and its gunicorn answers /readyz/ with database and cache ok. Its migrate
    and collectstatic lines are left out here: the run layer runs both with these settings, and
    they would add a minute on a busy machine."""
    combo, baked = bakes["3.13/s3"]
    path = shutil.copytree(baked, tmp_path / SLUG)  # the steps write files; keep the bake clean
    venv = venv_for(combo["python_version"])
    test = load_yaml(path / ".github/workflows/ci.yml")["jobs"]["test"]
    step = next(s for s in test["steps"] if "check --deploy" in s.get("run", ""))
    port = str(free_port())
    lines = step["run"].splitlines()
    heavy = [line for line in lines if re.search(r"manage\.py (migrate|collectstatic) ", line)]
    assert len(heavy) == 2, heavy
    script = "\n".join(line for line in lines if line not in heavy)
    script = script.replace("uv run ", f"{venv}/bin/").replace(
        "127.0.0.1:8000", f"127.0.0.1:{port}"
    )
    assert "${{" not in script
    env = {
        "PATH": f"{venv}/bin:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PORT": port,
        "WEB_CONCURRENCY": "1",
    }
    env |= {k: str(v) for k, v in test["env"].items()} | {
        k: str(v).replace("${{ github.run_id }}", "1") for k, v in step["env"].items()
    }
    env |= {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    try:
        result = check(["bash", "-euo", "pipefail", "-c", script], cwd=path, env=env, timeout=300)
    finally:
        pid = path / "gunicorn.pid"
        if pid.exists():  # the script failed before stopping its daemonised gunicorn
            subprocess.run(["kill", pid.read_text().strip()], check=False)
    assert "System check identified no issues (0 silenced)." in result.stdout + result.stderr
    assert '"database": "ok", "cache": "ok"' in result.stderr  # tee'd /readyz/ answer


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def dockerfile_instructions(path):
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (path / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_dockerfile_passes_hadolint_and_builds_a_production_image(bakes, combo):
    _, path = bakes[combo_id(combo)]
    result = tool("hadolint", "--no-color", path / "Dockerfile")  # fails on any finding
    assert result.stdout.strip() == ""

    instructions = dockerfile_instructions(path)
    stages = [args for op, args in instructions if op == "FROM"]
    base = f"python:{combo['python_version']}-slim"
    assert stages == [f"{base} AS build", base], "two stages on the slim image of the chosen Python"
    final = instructions[[op for op, _ in instructions].index("FROM", 1) :]
    user = [args for op, args in final if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), "runs as root"
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "uv sync --no-dev --locked" in runs and "manage.py collectstatic --noinput" in runs
    assert "COPY pyproject.toml uv.lock ./" in (path / "Dockerfile").read_text()
    assert any(op == "HEALTHCHECK" and "/healthz/" in args for op, args in final)
    assert json.loads(dict(final)["CMD"]) == ["gunicorn", f"{SLUG}.wsgi"]


@pytest.mark.slow
@pytest.mark.parametrize("storage", CHOICES["storage_backend"])
def test_dockerfile_build_settings_load_the_production_settings(bakes, venv_for, storage):
    """The collectstatic RUN line sets throwaway values for exactly the variables production
    requires; with only those (and nothing from this machine) the settings load and the static
    files are found."""
    combo, path = bakes[f"3.13/{storage}"]
    run = next(
        args
        for op, args in dockerfile_instructions(path)
        if op == "RUN" and "collectstatic" in args
    )
    words = shlex.split(run)
    assignments = dict(word.split("=", 1) for word in words[: words.index("/venv/bin/python")])
    venv = venv_for(combo["python_version"])
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8"} | assignments
    result = check(
        [f"{venv}/bin/python", "manage.py", "collectstatic", "--noinput", "--dry-run"],
        cwd=path,
        env=env,
    )
    assert "static files copied" in result.stdout


def ignored(patterns, name):
    """Whether .dockerignore's patterns (last match wins, ! re-includes) exclude `name`."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").removeprefix("**/")
        parts = Path(name).parts
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))) or fnmatch.fnmatch(parts[-1], pattern):  # fmt: skip
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_and_local_state_out_but_not_the_code(bakes):
    _, path = bakes["3.13/filesystem"]
    patterns = [
        line.strip()
        for line in (path / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name in (".env", ".env.production", ".git/HEAD", ".venv/bin/python", "db.sqlite3",
                 "media/original_images/a.jpg", "staticfiles/staticfiles.json",
                 f"{SLUG}/__pycache__/urls.cpython-313.pyc"):  # fmt: skip
        assert ignored(patterns, name), f"{name} would be sent to the Docker build"
    for name in without_dev_key(project_files(path)):  # .env: local, the dev key
        if not name.startswith((".github/", ".dockerignore", "Dockerfile", "compose.yaml")):
            assert not ignored(patterns, name), f"{name} is needed in the image"


# ---------------------------------------------------------------------------------------------
# compose.yaml


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_compose_file_is_valid_and_consistent(bakes, combo):
    _, path = bakes[combo_id(combo)]
    result = tool(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", path / "compose.yaml"
    )
    assert "ok -- validation done" in result.stdout
    compose = load_yaml(path / "compose.yaml")  # merge keys (<<: *app) resolved
    services, volumes = compose["services"], compose.get("volumes") or {}
    s3 = combo["storage_backend"] == "s3"
    assert {"postgres", "redis", "migrate", "web", "worker", "scheduler", "backup"} | ({"minio", "bucket"} if s3 else set()) == set(services)  # fmt: skip

    for name, service in services.items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), (
                f"{name}: pin {image}"
            )
            # MinIO left Docker Hub in 2026; its images are on quay.io.
            assert not image.startswith(("minio/", "docker.io/minio/")), image
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (path / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        if service.get("build"):
            assert (path / service["build"] / "Dockerfile").exists()

    postgres = services["postgres"]["environment"]
    database = urlsplit(services["web"]["environment"]["DATABASE_URL"])
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (database.username, database.password, database.path) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], "/" + postgres["POSTGRES_DB"]
    )  # fmt: skip
    assert urlsplit(services["web"]["environment"]["REDIS_URL"]).hostname == "redis"
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The Procfile's processes, as compose runs them (the image sets DJANGO_SETTINGS_MODULE).
    procfile = dict(line.split(": ", 1) for line in (path / "Procfile").read_text().splitlines())
    for name in ("worker", "scheduler"):
        assert services[name]["command"] == shlex.split(procfile[name].split(" --settings=")[0])
        assert services[name]["healthcheck"] == {"disable": True}  # the image's check asks gunicorn
    nightly = services["backup"]["command"][-1]
    assert "python manage.py dbbackup --clean" in nightly and "sleep 86400" in nightly
    assert ("python manage.py mediabackup --clean" in nightly) is not s3
    # pg_dump must be at least the server's major version: the image installs the client of the
    # major compose runs.
    pg_major = re.search(r"^ARG PG_MAJOR=(\d+)$", (path / "Dockerfile").read_text(), re.M)[1]
    assert services["postgres"]["image"] == f"postgres:{pg_major}"
    if s3:
        web = services["web"]["environment"]
        minio = services["minio"]["environment"]
        assert (web["AWS_ACCESS_KEY_ID"], web["AWS_SECRET_ACCESS_KEY"]) == (
            minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]
        )  # fmt: skip
        assert urlsplit(web["AWS_S3_ENDPOINT_URL"]).hostname == "minio"
        # The bucket compose creates is the one the policy file and .env.example name.
        bucket = web["AWS_STORAGE_BUCKET_NAME"]
        policy = json.loads((path / "deploy/s3-bucket-policy.json").read_text())
        assert policy["Statement"][0]["Resource"].startswith(f"arn:aws:s3:::{bucket}/")
        assert f"local/{bucket}" in services["bucket"]["command"][0]
        assert f"AWS_STORAGE_BUCKET_NAME={bucket}\n" in (path / ".env.example").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("storage", CHOICES["storage_backend"])
def test_compose_app_environment_satisfies_the_production_settings(bakes, venv_for, storage):
    """The web/worker containers' environment, plus the secret key .env provides, loads the
    production settings (nothing connects while loading)."""
    combo, path = bakes[f"3.13/{storage}"]
    web = load_yaml(path / "compose.yaml")["services"]["web"]
    venv = venv_for(combo["python_version"])
    env = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "DJANGO_SECRET_KEY": "compose-" * 8,
    }
    env |= {"DJANGO_SETTINGS_MODULE": f"{SLUG}.settings.production"}
    env |= {k: str(v) for k, v in web["environment"].items()}
    check([f"{venv}/bin/python", "-c", "import django; django.setup()"], cwd=path, env=env)


# ---------------------------------------------------------------------------------------------
# pre-commit, .editorconfig


def installed_version(name):
    return tool(name, "--version").stdout.split()[-1]


def test_pre_commit_config_is_valid_and_pins_the_tools_this_suite_runs(bakes):
    _, path = bakes["3.13/s3"]
    tool("pre-commit", "validate-config", path / ".pre-commit-config.yaml")
    repos = {repo["repo"]: repo for repo in load_yaml(path / ".pre-commit-config.yaml")["repos"]}
    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]
    djlint = repos["https://github.com/djlint/djLint"]
    assert {hook["id"] for hook in ruff["hooks"]} == {"ruff", "ruff-format"}
    # Same versions as this suite's tools, so "hooks pass on a fresh bake" below is the truth.
    assert ruff["rev"] == f"v{installed_version('ruff')}"
    assert djlint["rev"] == f"v{installed_version('djlint')}"


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_pre_commit_hooks_pass_on_a_fresh_bake(bakes, combo):
    _, path = bakes[combo_id(combo)]
    repos = {repo["repo"]: repo for repo in load_yaml(path / ".pre-commit-config.yaml")["repos"]}
    (hook,) = repos["https://github.com/djlint/djLint"]["hooks"]
    assert hook["id"] == "djlint-django"  # entry: djlint --profile=django
    templates = sorted(str(p.relative_to(path)) for p in path.rglob("*.html"))
    assert templates
    tool("djlint", "--profile=django", *hook["args"], *templates, cwd=path)
    tool("ruff", "check", "--no-cache", ".", cwd=path)
    tool("ruff", "format", "--check", "--no-cache", ".", cwd=path)
    # pre-commit-hooks: check-yaml, check-toml, end-of-file-fixer, trailing-whitespace; and the
    # .editorconfig (LF, final newline, no trailing whitespace, UTF-8).
    for name, content in project_files(path).items():
        text = content.decode("utf-8")
        assert "\r" not in text, f"{name}: CRLF"
        assert text == "" or (text.endswith("\n") and not text.endswith("\n\n")), (
            f"{name}: end of file"
        )
        bad = [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()]
        assert not bad, f"{name}: trailing whitespace on lines {bad}"
        if name.endswith((".yml", ".yaml")):
            yaml.safe_load(text)
        if name.endswith(".toml"):
            tomllib.loads(text)
    editorconfig = (path / ".editorconfig").read_text()
    assert "root = true" in editorconfig and "end_of_line = lf" in editorconfig


# ---------------------------------------------------------------------------------------------
# cookiecutter behaviour: --replay, baking over an existing project


def cookiecutter_cli(tmp_path, *args, cwd=None):
    """The cookiecutter command with a private config (replay dir) and no user config."""
    config = tmp_path / "cookiecutter-config.yaml"
    if not config.exists():
        config.write_text(
            f"replay_dir: {tmp_path / 'replay'}\ncookiecutters_dir: {tmp_path / 'cc'}\n"
        )
    return subprocess.run(
        [str(BIN / "cookiecutter"), "--config-file", str(config), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_the_questions_explain_every_option_and_enter_takes_the_default(tmp_path):
    """What a user meets first: `cookiecutter <template>` asks in plain words, explains each
    choice, derives the package name from the site name, and Enter accepts a default."""
    options = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    prompts = options["__prompts__"]
    public = [key for key in options if not key.startswith("_")]
    assert set(prompts) == set(public), "every question has a plain-words prompt"
    for key, choices in CHOICES.items():
        assert set(prompts[key]) == {"__prompt__", *choices}, f"{key}: explain every choice"
    # Name, then Enter for everything except storage (choice 2 = s3).
    answers = ["Harbour Arts"] + [""] * 7 + ["2"] + [""] * 3
    assert len(answers) == len(public)
    (tmp_path / "config.yaml").write_text(f"replay_dir: {tmp_path / 'replay'}\n")
    result = subprocess.run(
        [str(BIN / "cookiecutter"), "--config-file", str(tmp_path / "config.yaml"), "-o", str(tmp_path), str(TEMPLATE)],
        input="\n".join(answers) + "\n", capture_output=True, text=True, timeout=120,
        env=os.environ | {"COLUMNS": "300"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for key in public:
        prompt = prompts[key] if isinstance(prompts[key], str) else prompts[key]["__prompt__"]
        assert prompt in result.stdout, key
    for key in CHOICES:
        for label in (v for k, v in prompts[key].items() if k != "__prompt__"):
            assert label in result.stdout
    site = tmp_path / "harbour_arts"
    assert (site / "deploy/s3-bucket-policy.json").is_file() and (site / "Dockerfile").is_file()
    assert "cd harbour_arts" in result.stdout  # the next steps


def without_dev_key(files):
    """A bake's files but .env, which holds the bake's random development key."""
    return {name: content for name, content in files.items() if name != ".env"}


def test_replay_rebakes_with_the_answers_given_last_time(tmp_path):
    answers = ["storage_backend=s3", "use_docker=no", "time_zone=Europe/Paris", "domain_name=www.example.org"]  # fmt: skip
    first = cookiecutter_cli(tmp_path, "--no-input", "-o", tmp_path / "a", TEMPLATE, *answers)
    assert first.returncode == 0, first.stderr
    replayed = cookiecutter_cli(tmp_path, "--replay", "-o", tmp_path / "b", TEMPLATE)
    assert replayed.returncode == 0, replayed.stderr
    a, b = project_files(tmp_path / "a" / SLUG), project_files(tmp_path / "b" / SLUG)
    assert without_dev_key(a) == without_dev_key(b)
    assert "deploy/s3-bucket-policy.json" in b and "Dockerfile" not in b
    # The saved answers also work as a file, e.g. one committed to the site's repository.
    replay_file = tmp_path / "answers.json"
    shutil.copy(tmp_path / "replay" / f"{TEMPLATE.name}.json", replay_file)
    from_file = cookiecutter_cli(tmp_path, "--replay-file", replay_file, "-o", tmp_path / "c", TEMPLATE)  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert without_dev_key(project_files(tmp_path / "c" / SLUG)) == without_dev_key(a)


def test_baking_over_an_existing_project(tmp_path):
    """Without -f cookiecutter refuses and changes nothing; with -f the template's files are
    rewritten and the site's own files survive; a bad answer never deletes an existing project."""
    assert cookiecutter_cli(tmp_path, "--no-input", "-o", tmp_path, TEMPLATE).returncode == 0
    project = tmp_path / SLUG
    (project / ".env").write_text("DJANGO_SECRET_KEY=mine\n")
    (project / "media/images").mkdir(parents=True)
    (project / "media/images/photo.jpg").write_bytes(b"jpeg")
    (project / "home/models.py").write_text("# my changes\n")
    check(["git", "init", "-q"], cwd=project)
    check(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "bake"], cwd=project)  # fmt: skip
    before = project_files(project)

    again = cookiecutter_cli(tmp_path, "--no-input", "-o", tmp_path, TEMPLATE)
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr
    assert project_files(project) == before

    bad = cookiecutter_cli(tmp_path, "--no-input", "-f", "-o", tmp_path, TEMPLATE, "time_zone=Mars/Base")  # fmt: skip
    assert bad.returncode != 0 and "is not an IANA time zone name" in bad.stdout + bad.stderr
    assert project_files(project) == before, "a refused re-bake changed the existing project"

    overwritten = cookiecutter_cli(tmp_path, "--no-input", "-f", "-o", tmp_path, TEMPLATE)
    assert overwritten.returncode == 0, overwritten.stderr
    after = project_files(project)
    assert after["home/models.py"] != b"# my changes\n"  # template files rewritten
    assert after[".env"] == b"DJANGO_SECRET_KEY=mine\n"
    assert after["media/images/photo.jpg"] == b"jpeg"
    assert "bake" in check(["git", "log", "--oneline"], cwd=project).stdout

    (project / "home/models.py").write_text("# my changes\n")
    skipped = cookiecutter_cli(tmp_path, "--no-input", "-f", "-s", "-o", tmp_path, TEMPLATE)
    assert skipped.returncode == 0, skipped.stderr
    assert (
        project / "home/models.py"
    ).read_text() == "# my changes\n"  # -f -s keeps existing files


# ---------------------------------------------------------------------------------------------
# The template repository's own code


def test_template_code_is_lint_clean():
    # Explicit paths: ruff would otherwise read the template's (Jinja) pyproject.toml.
    tool("ruff", "check", "--no-cache", "tests", "scripts", cwd=TEMPLATE)
    tool("ruff", "format", "--check", "--no-cache", "tests", "scripts", cwd=TEMPLATE)
