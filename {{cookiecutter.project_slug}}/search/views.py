"""Site search: only pages the visitor may see, for any query, without a 500.

Who sees what (Wagtail's view restrictions: password, login, groups; a restriction covers the
page and everything below it):
- Anonymous visitors get public pages only (``.public()``), even after unlocking a page password:
  their results never depend on the session, so any cache in front can share them safely.
- Logged-in visitors get the pages whose every restriction they pass right now, as Wagtail
  decides when they open the page: login restrictions, their groups (superusers pass all), and
  passwords they have entered in this session.

Queries are cut to MAX_QUERY_LENGTH characters and MAX_QUERY_TERMS words, and control characters
are dropped: the Postgres search backend fails with a RecursionError at about 180 terms, and
Postgres refuses NUL characters. The page says when a query was shortened.
"""

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control
from wagtail.models import Page, PageViewRestriction

# To enable logging of search queries for use with the "Promoted search results" module
# <https://docs.wagtail.org/en/stable/reference/contrib/searchpromotions.html>
# uncomment the following line and the lines indicated in the search function
# (after adding wagtail.contrib.search_promotions to INSTALLED_APPS):

# from wagtail.contrib.search_promotions.models import Query

MAX_QUERY_LENGTH = 200
MAX_QUERY_TERMS = 20


def clean_query(raw):
    """The query to search for, and whether it had to be shortened."""
    printable = "".join(c if c.isprintable() else " " for c in raw)
    terms = printable.split()
    query = " ".join(terms[:MAX_QUERY_TERMS])[:MAX_QUERY_LENGTH].strip()
    return query, query != " ".join(terms)


def visible_pages(request):
    """Live pages this visitor may view."""
    pages = Page.objects.live()
    if not request.user.is_authenticated:
        return pages.public()
    hidden = Q()
    for restriction in PageViewRestriction.objects.select_related("page"):
        if not restriction.accept_request(request):
            hidden |= Page.objects.descendant_of_q(restriction.page, inclusive=True)
    return pages.exclude(hidden) if hidden else pages


def search(request):
    search_query, shortened = clean_query(request.GET.get("query", ""))
    page = request.GET.get("page", 1)

    # Search
    if search_query:
        search_results = visible_pages(request).search(search_query)

        # To log this query for use with the "Promoted search results" module:

        # query = Query.get(search_query)
        # query.add_hit()

    else:
        search_results = Page.objects.none()

    # Pagination
    paginator = Paginator(search_results, 10)
    try:
        search_results = paginator.page(page)
    except PageNotAnInteger:
        search_results = paginator.page(1)
    except EmptyPage:
        search_results = paginator.page(paginator.num_pages)

    response = TemplateResponse(
        request,
        "search/search.html",
        {
            "search_query": search_query,
            "search_results": search_results,
            "shortened": shortened,
            "max_terms": MAX_QUERY_TERMS,
            "max_length": MAX_QUERY_LENGTH,
        },
    )
    if request.user.is_authenticated:
        # Results for a logged-in visitor depend on who they are: no shared cache may keep them.
        patch_cache_control(response, private=True)
    return response
