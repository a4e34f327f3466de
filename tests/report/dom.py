"""Elements of an HTML page as a list, each with its attributes and its lane, for checks without a browser.

Used on the report as written (html.parser) and on the DOM Chromium dumps after the page's scripts ran.
"""
from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

VOID = {"meta", "link", "input", "br", "img", "hr", "col", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    lane: str | None            # the data-worker of the nearest ancestor (or itself) that has one
    ancestors: tuple[str, ...]  # ids of enclosing elements
    text: str = ""


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        parent_lane = self.stack[-1].lane if self.stack else None
        ids = tuple(e.attrs["id"] for e in self.stack if "id" in e.attrs)
        el = Element(tag, attrs, attrs.get("data-worker", parent_lane), ids)
        self.elements.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        for el in self.stack:
            el.text += data


def parse(html: str) -> list[Element]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.elements


def select(elements: list[Element], tag: str | None = None, within: str | None = None, **attrs) -> list[Element]:
    """Elements of a tag (any if None), inside the element of id `within`, having the attributes given
    (data_task=... for data-task; True for 'present')."""
    out = []
    for el in elements:
        if tag is not None and el.tag != tag:
            continue
        if within is not None and within not in el.ancestors:
            continue
        ok = True
        for key, want in attrs.items():
            name = key.replace("_", "-")
            if name not in el.attrs or (want is not True and el.attrs[name] != want):
                ok = False
                break
        if ok:
            out.append(el)
    return out
