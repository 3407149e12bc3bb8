"""Background work: Wagtail's tasks go to the database queue (django-tasks-db) in production and
the real worker command runs them; the web request that caused them only enqueues. (Rows in the
queue's table are the proof that production TASKS is the database backend.)

Uploads and publishing go through the admin of a gunicorn-served project; the worker is
`manage.py db_worker --batch` (the Procfile's `worker` without staying up: it drains and exits).
"""

from types import SimpleNamespace

import psycopg
import pytest
from adminclient import CREATE_SUPERUSER, AdminClient, png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(make_module_project):
    project = make_module_project().prepare()
    # The admin's user, and a draft whose title only its unpublished revision has.
    project.shell(
        CREATE_SUPERUSER + "from wagtail.models import Site\n"
        "from home.models import ContentPage\n"
        "home = Site.objects.get(is_default_site=True).root_page\n"
        "page = home.add_child(instance=ContentPage(title='Draft', slug='news', live=False))\n"
        "page.title = 'Wombat news'\n"
        "page.save_revision()\n"
    )
    with project.gunicorn() as server:
        yield SimpleNamespace(project=project, admin=AdminClient(server.base_url).login())


def sql(project, query, *params):
    with psycopg.connect(project.env["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def task_rows(project):
    """{row id: [task name, status]} for every row in the task queue."""
    rows = sql(project, "SELECT id, task_path, status FROM django_tasks_database_dbtaskresult")
    return {str(id): [path.rsplit(".", 1)[-1], status] for id, path, status in rows}


def run_worker(project):
    project.manage("db_worker", "--batch", timeout=120)


def test_an_image_upload_enqueues_work_and_its_file_is_deleted_by_the_worker(site):
    project, admin = site.project, site.admin
    before = task_rows(project)
    response = admin.post(
        "/admin/images/add/",
        {"title": "Quokka portrait"},
        files={"file": ("quokka.png", png(), "image/png")},
    )
    assert response.status_code == 302, response.text[:3000]
    [(image_id, file_name)] = sql(
        project, "SELECT id, file FROM wagtailimages_image WHERE title = 'Quokka portrait'"
    )
    original = project.path / "media" / file_name
    assert original.exists()

    # The request only enqueued, nothing ran. (Wagtail's image form also indexes the image for
    # search itself, inside the request, so search is no witness here; see the page test.)
    new = {k: v for k, v in task_rows(project).items() if k not in before}
    names = sorted(name for name, _ in new.values())
    assert "insert_or_update_object_task" in names and "update_reference_index_task" in names
    assert {status for _, status in new.values()} == {"READY"}

    run_worker(project)
    rows = task_rows(project)
    assert {rows[k][1] for k in new} == {"SUCCESSFUL"}

    # Deleting it in the admin leaves the file to the worker.
    before = rows
    response = admin.post(f"/admin/images/{image_id}/delete/")
    assert response.status_code == 302
    new = {k: v for k, v in task_rows(project).items() if k not in before}
    assert sorted(new.values()) == [["delete_file_from_storage_task", "READY"]]
    assert original.exists()
    run_worker(project)
    assert not original.exists()


def test_publishing_enqueues_work_the_worker_completes_and_old_rows_are_pruned(site):
    project, admin = site.project, site.admin
    [(page_id,)] = sql(project, "SELECT id FROM wagtailcore_page WHERE slug = 'news'")
    before = task_rows(project)

    response = admin.post(f"/admin/bulk/wagtailcore/page/publish/?id={page_id}&next=/admin/", {})
    assert response.status_code == 302, response.text[:3000]
    assert admin.get("/news/").status_code == 200

    new = {k: v for k, v in task_rows(project).items() if k not in before}
    assert "insert_or_update_object_task" in {name for name, _ in new.values()}
    assert {status for _, status in new.values()} == {"READY"}
    # The site's search page does not find it until the worker has updated the search index.
    assert "Wombat news" not in admin.get("/search/?query=wombat").text

    run_worker(project)
    rows = task_rows(project)
    assert rows and {status for _, status in rows.values()} == {"SUCCESSFUL"}
    assert "Wombat news" in admin.get("/search/?query=wombat").text

    # The README's daily cleanup, with no minimum age: every finished row goes.
    project.manage("prune_db_task_results", "--min-age-days", "0")
    assert task_rows(project) == {}
