"""A page as headless Chromium renders it."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RenderedPage:
    dom: str

    @property
    def drawn_marks(self) -> dict[str, int]:
        """Per chart (its figure caption): how many marks Chromium drew with a non-empty box,
        as the page's script recorded after layout."""
        found = {}
        for attrs, caption in re.findall(
            r"<figure ([^>]*)><figcaption>([^<]*)</figcaption>", self.dom
        ):
            marks = re.search(r'data-drawn-marks="(\d+)"', attrs)
            if marks:
                found[html.unescape(caption)] = int(marks.group(1))
        return found
