from wagtail import blocks
from wagtail.admin.panels import FieldPanel
from wagtail.documents.blocks import DocumentChooserBlock
from wagtail.fields import StreamField
from wagtail.images.blocks import ImageBlock
from wagtail.models import Page
from wagtail.search import index

BODY_BLOCKS = [
    ("heading", blocks.CharBlock(form_classname="title")),
    ("paragraph", blocks.RichTextBlock()),
    ("image", ImageBlock()),
    ("document", DocumentChooserBlock()),
]


class HomePage(Page):
    body = StreamField(BODY_BLOCKS, blank=True)

    content_panels = Page.content_panels + [FieldPanel("body")]
    search_fields = Page.search_fields + [index.SearchField("body")]


class ContentPage(Page):
    """A general page: headings, text, images and document links."""

    body = StreamField(BODY_BLOCKS, blank=True)

    content_panels = Page.content_panels + [FieldPanel("body")]
    search_fields = Page.search_fields + [index.SearchField("body")]
