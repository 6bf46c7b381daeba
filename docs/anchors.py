"""The anchors of the site's headings, made as Pandoc makes them (so as Quarto and nbdev's index of names do).

A link to a documented name, `data.ipynb#read_optdigits`, or nbdev's `data.html#digitslab.fit`, then finds its section
on this site as on a Quarto one; MyST resolves such links and, under `sphinx-build -n`, reports those that find none.
"""
import re


def pandoc_slug(title: str) -> str:
    "A heading's anchor as Pandoc makes it: `read_optdigits`, `digitslab.fit`, `a-gallery-of-digits`."
    slug = re.sub(r"[^\w\s.-]", "", title.lower()).strip()
    slug = re.sub(r"\s+", "-", slug)
    return re.sub(r"^[^a-z]+", "", slug) or "section"
