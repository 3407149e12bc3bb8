"""Values every template can use."""

from django.conf import settings


def site_description(request):
    """The site-wide default for <meta name="description"> (base.html)."""
    return {"site_description": settings.SITE_DESCRIPTION}
