import pytest
from wagtail.models import Page, Site


@pytest.fixture
def home(db):
    return Site.objects.get(is_default_site=True).root_page.specific


@pytest.fixture
def editor(db, django_user_model):
    return django_user_model.objects.create_superuser(
        "editor", "editor@example.com", "pw-for-tests"
    )


@pytest.fixture
def root(db):
    return Page.get_first_root_node()
