"""``SearchSettings`` from flat values, as the command line takes them: the strategy's own options
(``prune_rounds``, ``grid``, ...) go to ``options``, the rest are settings."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bertsmith.search.job import SearchSettings

FIELDS = {f.name for f in fields(SearchSettings)}


def search_settings(**values: Any) -> SearchSettings:
    return SearchSettings(
        **{k: v for k, v in values.items() if k in FIELDS}, options={k: v for k, v in values.items() if k not in FIELDS}
    )
