from django.db import models


class PageCacheGeneration(models.Model):
    """The page cache's generation, the durable truth of when pages last changed (pagecache.py).

    One row. Every change that pages show adds one to it inside the change's own transaction, so
    the new value and the new content become visible together, and no Redis outage can lose it.
    """

    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"page cache generation {self.value}"
