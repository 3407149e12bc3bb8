"""Operations a site lives on, run as the baked site documents them: the Procfile's `scheduler`
publishes and expires on time (two at once do no harm), backups restore into an empty database and
media folder (the README's runbook blocks, run as written), and the secret key rotates without
logging editors out.

Everything runs a baked project with production settings against the real Postgres, Redis,
gunicorn (and the moto S3 server for s3 bakes); commands come from the baked Procfile and
README, not from this file.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from contextlib import ExitStack

import psycopg
import pytest
import requests
from adminclient import CREATE_SUPERUSER, AdminClient, png
from conftest import HTTPS, background, fresh_database
from s3 import s3_server  # noqa: F401  (the moto server fixture)

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# What the baked project says


def procfile(project):
    """{process name: command line} from the baked Procfile."""
    lines = (project.path / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def runbook(project, title):
    """The ```sh blocks under '### <title>' in the baked README's Runbooks, dedented, joined."""
    readme = (project.path / "README.md").read_text()
    runbooks = readme.split("\n## Runbooks\n", 1)[1]
    section = runbooks.split(f"\n### {title}\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```$", section, flags=re.M | re.S)
    assert blocks, f"no sh block under {title!r}"
    return "\n".join(
        "\n".join(line.removeprefix(indent) for line in body.splitlines())
        for indent, body in blocks
    )


def run_as_written(project, block, env, tmp_path):
    """Run a README block in bash (-eu, stop at the first failing command) in the project
    directory; return the environment it leaves behind."""
    env_file = tmp_path / f"env-{time.monotonic_ns()}"
    script = f"set -euo pipefail\n{block}\nenv -0 > {shlex.quote(str(env_file))}\n"
    result = subprocess.run(
        ["bash", "-c", script], cwd=project.path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)


def result_of(output, marker="RESULT"):
    """The JSON a project.shell() snippet printed after 'RESULT ' (logs may share stdout)."""
    [line] = [line for line in output.splitlines() if line.startswith(marker + " ")]
    return json.loads(line.removeprefix(marker + " "))


def get(server, path, **kwargs):
    return requests.get(server.base_url + path, headers=HTTPS, timeout=30, **kwargs)


def sql(database_url, query, *params):
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


# ---------------------------------------------------------------------------------------------
# One filesystem project for the module (migrated, with an admin user)


@pytest.fixture(scope="module")
def site(make_module_project):
    # One gunicorn worker is enough for these tests and starts faster.
    project = make_module_project(extra_env={"WEB_CONCURRENCY": "1"}).prepare()
    project.shell(CREATE_SUPERUSER)
    return project


# ---------------------------------------------------------------------------------------------
# 1. Scheduled publishing

SCHEDULE_PAGES = """
import json
from datetime import timedelta
from django.utils import timezone
from wagtail.models import Site
from home.models import ContentPage
from {slug}.management.commands.scheduler import LOCK_ID

home = Site.objects.get(is_default_site=True).root_page
now = timezone.now()
due = {{}}
for prefix, seconds in (("locked", 8), ("main", 20)):
    at = now + timedelta(seconds=seconds)
    soon = home.add_child(instance=ContentPage(title=prefix + " soon", slug=prefix + "-soon", live=False))
    soon.go_live_at = at
    soon.save_revision().publish()  # scheduled: the page stays unpublished until `at`
    home.add_child(instance=ContentPage(title=prefix + " going", slug=prefix + "-going", expire_at=at))
    due[prefix] = at.timestamp()
print("RESULT", json.dumps({{"due": due, "lock_id": LOCK_ID}}))
"""


def wait_until(condition, deadline, step=0.25):
    while time.time() < deadline:
        if condition():
            return time.time()
        time.sleep(step)
    return None


def test_procfile_scheduler_publishes_and_expires_on_time_and_two_at_once_do_no_harm(site):
    """Two copies of the Procfile's `scheduler` line run at once. While something else holds the
    scheduler's advisory lock they do nothing; after it is released, the overdue pair goes live /
    disappears (its cached copy too), and a pair due 20 s after creation follows at its time.
    Each page is published or unpublished exactly once."""
    command = procfile(site)["scheduler"]
    assert "publish_scheduled" not in command  # the loop is the project's `scheduler` command
    with site.gunicorn() as server, ExitStack() as stack:
        created = result_of(site.shell(SCHEDULE_PAGES.format(slug=site.slug)))
        due, lock_id = created["due"], created["lock_id"]
        for prefix in ("locked", "main"):
            assert get(server, f"/{prefix}-soon/").status_code == 404
            assert get(server, f"/{prefix}-going/").status_code == 200
            cached = get(server, f"/{prefix}-going/")
            assert (cached.status_code, cached.headers["X-Page-Cache"]) == (200, "hit")

        # Another scheduler's run, as far as these two can tell.
        holder = stack.enter_context(psycopg.connect(site.env["DATABASE_URL"], autocommit=True))
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
        for n in (1, 2):
            stack.enter_context(
                background(
                    shlex.split(command),
                    cwd=site.path,
                    env=site.env,
                    log=site.path / f"scheduler-{n}.log",
                )  # fmt: skip
            )

        def published(prefix):
            return (
                get(server, f"/{prefix}-soon/").status_code == 200
                and get(server, f"/{prefix}-going/").status_code == 404
            )

        time.sleep(max(0, due["locked"] + 3 - time.time()))
        assert get(server, "/locked-soon/").status_code == 404, "ran while the lock was held"
        assert get(server, "/locked-going/").status_code == 200
        holder.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        released = time.time()
        unlocked = wait_until(lambda: published("locked"), released + 60)
        assert unlocked, "the overdue pair was not handled after the lock was released"

        # ~60 s is the contract; the loop wakes at the due time, so it is usually about 1 s.
        done = wait_until(lambda: published("main"), due["main"] + 60)
        assert done, "a page due 20 s ahead was not published within 60 s of its time"
        print(f"overdue pair done {unlocked - released:.1f} s after the lock's release; "
              f"pair due 20 s ahead done {done - due['main']:.1f} s after its time")  # fmt: skip

    actions = sql(
        site.env["DATABASE_URL"],
        "SELECT p.slug, l.action FROM wagtailcore_pagelogentry l "
        "JOIN wagtailcore_page p ON p.id = l.page_id "
        "WHERE l.action LIKE 'wagtail.%%publish.scheduled' ORDER BY p.slug",
    )
    assert actions == [
        ("locked-going", "wagtail.unpublish.scheduled"),
        ("locked-soon", "wagtail.publish.scheduled"),
        ("main-going", "wagtail.unpublish.scheduled"),
        ("main-soon", "wagtail.publish.scheduled"),
    ]


# ---------------------------------------------------------------------------------------------
# 2. Backups: the drill

MAKE_CONTENT = """
import json
from pathlib import Path
from django.contrib.auth import get_user_model
from django.core.files.images import ImageFile
from django.core.files.base import ContentFile
from wagtail.documents.models import Document
from wagtail.images.models import Image
from wagtail.models import Page, Site
from wagtail.rich_text import RichText
from home.models import ContentPage

get_user_model().objects.create_user("drill-editor", "editor@example.com", "editor-pw-for-tests")
image = Image.objects.create(title="Drill image", file=ImageFile(open({png!r}, "rb"), name="drill.png"))
document = Document.objects.create(title="Drill report", file=ContentFile(Path({doc!r}).read_bytes(), name="report.pdf"))
home = Site.objects.get(is_default_site=True).root_page
home.add_child(instance=ContentPage(title="Drill page", slug="drill", body=[
    ("paragraph", RichText("<p>Made before the backup</p>")), ("document", document),
]))
print("RESULT", json.dumps({{"document": document.url}}))
"""

COUNTS = """
import json
from django.contrib.auth import get_user_model
from wagtail.documents.models import Document
from wagtail.images.models import Image
from wagtail.models import Page
print("COUNTS", json.dumps({
    "pages": sorted(Page.objects.values_list("url_path", "live")),
    "users": sorted(get_user_model().objects.values_list("username", flat=True)),
    "documents": sorted(Document.objects.values_list("title", "file")),
    "images": sorted(Image.objects.values_list("title", "file", "width")),
}))
"""

AFTER_THE_BACKUP = """
from wagtail.models import Site
from home.models import ContentPage
page = ContentPage.objects.get(slug="drill")
page.title = "Changed after the backup"
page.save_revision().publish()
Site.objects.get(is_default_site=True).root_page.add_child(
    instance=ContentPage(title="Made after the backup", slug="later")
)
"""


def media_files(root):
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_backup_and_restore_drill_into_an_empty_database_and_media_folder(site, tmp_path):
    """The README's "Back up" and "Restore from backup" blocks, as written, with BACKUP_KEEP=1:
    --clean removes last year's backups; the newest restores into a new database and an empty
    media/. Everything is back, byte for byte, and the restored site serves it (not the page
    cache's copy of what changed after the backup)."""
    backups = tmp_path / "backups"
    env = site.env | {"BACKUP_DIR": str(backups), "BACKUP_KEEP": "1"}
    (tmp_path / "drill.png").write_bytes(png(64, 48))
    document_bytes = os.urandom(40_000)
    (tmp_path / "report.pdf").write_bytes(document_bytes)
    output = site.shell(
        MAKE_CONTENT.format(png=str(tmp_path / "drill.png"), doc=str(tmp_path / "report.pdf"))
        + COUNTS
    )
    document_url, before = result_of(output)["document"], result_of(output, "COUNTS")
    media = site.path / "media"
    media_before = media_files(media)
    assert any(name.startswith("original_images/") for name in media_before)
    assert any(name.startswith("documents/") for name in media_before)

    # Last year's backups, named as dbbackup names them.
    backups.mkdir()
    old = [f"{site.slug}-2025-01-01-031500.tar", f"default-{site.slug}-2025-01-01-031500.psql.bin"]
    for name in old:
        (backups / name).write_bytes(b"old")
    run_as_written(site, runbook(site, "Back up"), env, tmp_path)
    names = sorted(p.name for p in backups.iterdir())
    dumps = [n for n in names if n.endswith(".psql.bin")]
    tars = [n for n in names if n.endswith(".tar")]
    assert len(dumps) == 1 and len(tars) == 1, names  # --clean kept BACKUP_KEEP of each
    assert not set(old) & set(names)  # the older ones went
    # pg_dump's custom format (compressed), which pg_restore reads.
    assert (backups / dumps[0]).read_bytes()[:5] == b"PGDMP"

    # Life goes on after the backup, and the page cache holds the newer page.
    site.shell(AFTER_THE_BACKUP)
    with site.gunicorn() as server:
        for _ in range(2):
            page = get(server, "/drill/")
        assert "Changed after the backup" in page.text and page.headers["X-Page-Cache"] == "hit"

    # Disaster: a new, empty database and an empty media folder.
    shutil.move(media, tmp_path / "media-before")
    media.mkdir()
    with fresh_database() as new_database:
        assert sql(new_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
            (0,)
        ]
        restored_env = env | {"DATABASE_URL": new_database}
        run_as_written(site, runbook(site, "Restore from backup"), restored_env, tmp_path)

        assert result_of(site.shell(COUNTS, env=restored_env), "COUNTS") == before
        assert media_files(media) == media_before

        with site.gunicorn(env={"DATABASE_URL": new_database}) as server:
            page = get(server, "/drill/")
            assert page.status_code == 200
            assert "Made before the backup" in page.text
            assert "Changed after the backup" not in page.text  # the cache was emptied
            assert get(server, "/later/").status_code == 404
            download = get(server, document_url)
            assert download.status_code == 200
            assert download.content == document_bytes
            AdminClient(server.base_url).login()  # password hashes came back too


def test_s3_database_backup_goes_to_the_bucket_and_restores(
    site,
    make_module_project,
    s3_server,  # noqa: F811
    tmp_path,
):
    """s3 bakes: the same runbook blocks put the database dump under backups/ in the media
    bucket (no BACKUP_* variable set) and restore it into an empty database. The shipped lifecycle
    rules and versioning are accepted by an S3 API, as the README applies them. (The s3 bake uses
    the module's migrated database: the schema is the same.)"""
    bucket = s3_server.new_bucket()
    database = {"DATABASE_URL": site.env["DATABASE_URL"]}
    project = make_module_project(storage_backend="s3", extra_env=s3_server.env(bucket) | database)
    project.shell(
        "from wagtail.models import Site\nfrom home.models import ContentPage\n"
        "Site.objects.get(is_default_site=True).root_page.add_child("
        "instance=ContentPage(title='Bucket drill', slug='bucket-drill'))\n"
    )
    run_as_written(project, runbook(project, "Back up"), project.env, tmp_path)
    [dump] = [key for key in s3_server.keys(bucket, "backups/") if key.endswith(".psql.bin")]
    body = s3_server.client.get_object(Bucket=bucket, Key=dump)["Body"].read()
    assert body[:5] == b"PGDMP"

    with fresh_database() as new_database:
        restored = project.env | {"DATABASE_URL": new_database}
        run_as_written(project, runbook(project, "Restore from backup"), restored, tmp_path)
        titles = sql(new_database, "SELECT title FROM wagtailcore_page ORDER BY path")
        assert ("Bucket drill",) in titles

    s3 = s3_server.client
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    rules = json.loads((project.path / "deploy" / "s3-lifecycle.json").read_text())
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)
    stored = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["NoncurrentVersionExpiration"] for r in stored if "NoncurrentVersionExpiration" in r] == [{"NoncurrentDays": 30}]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 3. Secret key rotation


def test_rotating_the_secret_key_as_the_runbook_says_keeps_editors_logged_in(site, tmp_path):
    """Two editors log in under the old key. The README's rotation block makes a new key with
    the old one as a fallback; gunicorn restarted with it keeps the first editor logged in.
    Without the fallback (what rotating cost before) the second editor is logged out."""
    with site.gunicorn() as server:
        kept, control = AdminClient(server.base_url).login(), AdminClient(server.base_url).login()
        assert kept.get("/admin/", allow_redirects=False).status_code == 200

    rotated = run_as_written(site, runbook(site, "Rotate the secret key"), site.env, tmp_path)
    new = {name: rotated[name] for name in ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FALLBACKS")}
    assert new["DJANGO_SECRET_KEY_FALLBACKS"] == site.env["DJANGO_SECRET_KEY"]
    assert new["DJANGO_SECRET_KEY"] not in (site.env["DJANGO_SECRET_KEY"], "")

    with site.gunicorn(env={"DJANGO_SECRET_KEY": new["DJANGO_SECRET_KEY"]}) as server:
        control.base_url = server.base_url
        response = control.get("/admin/", allow_redirects=False)
        assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]

    with site.gunicorn(env=new) as server:
        kept.base_url = server.base_url
        response = kept.get("/admin/", allow_redirects=False)
        assert response.status_code == 200, response.headers.get("Location")


def test_operations_variables_empty_means_unset_and_weak_fallbacks_stop_start_up(site):
    empty = {"DJANGO_SECRET_KEY_FALLBACKS": "", "BACKUP_DIR": ""}
    output = site.shell(
        "import json\nfrom django.conf import settings\n"
        "print('RESULT', json.dumps([settings.SECRET_KEY_FALLBACKS,"
        " settings.STORAGES['dbbackup']['OPTIONS']['location'], settings.DBBACKUP_CLEANUP_KEEP]))",
        env=empty,
    )
    assert result_of(output) == [[], str(site.path / "backups"), 10]

    weak = "x" * 60  # long enough, but one character
    strong = "k" + os.urandom(40).hex()
    result = subprocess.run(
        [site.python, "manage.py", "check"], cwd=site.path, capture_output=True, text=True,
        env=site.env | {"DJANGO_SECRET_KEY_FALLBACKS": f"{strong}, short-key,{weak}", "BACKUP_KEEP": "0"},
    )  # fmt: skip
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert "DJANGO_SECRET_KEY_FALLBACKS" in error and "[2, 3]" in error and "BACKUP_KEEP" in error
    assert "short-key" not in result.stderr and weak not in result.stderr  # no key in the logs
