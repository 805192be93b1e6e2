"""The operator admin's overview page (/admin/overview/). It lives here, in the top layer,
because it is the one page that joins billing's figures with the consumers' state."""

from . import admin_overview  # noqa: F401 - registers the page
