"""The Wagtail admin's own Content-Security-Policy.

Django's ContentSecurityPolicyMiddleware sends settings.SECURE_CSP, the strict policy public
pages get (no inline script or style). The Wagtail admin cannot work under it: it has inline
scripts and styles and no nonce support, and previews uploads as blob: and data: images. This
middleware, listed after Django's, hands admin responses settings.WAGTAILADMIN_CSP instead
(Django's middleware uses a response's `_csp_config` when one is set). A response that already
carries a policy, such as a document download's "default-src 'none'", keeps it.
"""

from django.conf import settings
from django.urls import reverse


class AdminContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.admin_prefix = None

    def __call__(self, request):
        response = self.get_response(request)
        if self.admin_prefix is None:
            # Wherever urls.py mounts the admin (moving it off /admin/ is common).
            self.admin_prefix = reverse("wagtailadmin_home")
        if request.path.startswith(self.admin_prefix):
            # Enforced, or only reported (dev), whichever the site's own policy is.
            if settings.SECURE_CSP:
                response._csp_config = settings.WAGTAILADMIN_CSP
            if settings.SECURE_CSP_REPORT_ONLY:
                response._csp_ro_config = settings.WAGTAILADMIN_CSP
        return response
