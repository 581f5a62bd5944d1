"""Links from the ``runs`` table's primary key column to the run pages.

Datasette draws a table's primary key itself, as a link to the row page, and
does not offer that cell to ``render_cell``. So for a table called ``runs``
this plugin supplies the per-table template Datasette looks for first
(``_table-<database>-runs.html``): it renders the usual ``_table.html`` and
then points the row links of a consortium database's runs at their run
pages. A ``_table-<database>-runs.html`` in ``--template-dir`` still wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import markupsafe
from datasette.utils import tilde_decode
from jinja2 import BaseLoader, ChoiceLoader, Environment, TemplateNotFound

from .views import known_consortium_database, run_path

if TYPE_CHECKING:
    from datasette.app import Datasette

RUNS_TEMPLATE = re.compile(r"^_table-(?:row-)?.+-runs\.html$")
FILTER_NAME = "consortium_run_links"
TEMPLATE_SOURCE = (
    "{% filter " + FILTER_NAME + "(database) %}"
    '{% include "_table.html" %}'
    "{% endfilter %}"
)


class RunsTableLoader(BaseLoader):
    """Answers only the per-table template names of tables called ``runs``."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool]]:
        if not RUNS_TEMPLATE.match(template):
            raise TemplateNotFound(template)
        return TEMPLATE_SOURCE, None, lambda: True

    def list_templates(self) -> list[str]:
        return []


def run_links_filter(datasette: Datasette) -> Callable[[Any, str], Any]:
    def rewrite(html: Any, database: str) -> Any:
        if not known_consortium_database(datasette, database):
            return html
        runs_url = re.escape(str(datasette.urls.table(database, "runs")))
        row_link = re.compile(f'href="{runs_url}/([^"/?#]+)"')

        def to_run_page(match: re.Match[str]) -> str:
            consortium_id = tilde_decode(match.group(1))
            url = markupsafe.escape(run_path(datasette, database, consortium_id))
            return f'href="{url}"'

        return markupsafe.Markup(row_link.sub(to_run_page, str(html)))

    return rewrite


def install(environment: Environment, datasette: Datasette) -> None:
    """Add the loader (after Datasette's own) and its filter to ``environment``."""
    environment.loader = ChoiceLoader([environment.loader, RunsTableLoader()])
    environment.filters[FILTER_NAME] = run_links_filter(datasette)
