"""The documentation builds with no warning, its internal links resolve, and its figures load.

Slow suite (``make test-slow`` installs the ``docs`` extra first): one Sphinx build of
``docs/`` with warnings as errors (``-W --keep-going``), which runs every example script in the
gallery (a failing example fails the build) and the tour's classical sections; then, on the
built HTML, every relative ``href``/``src`` must name a file on disk (and an ``id`` in it when
it has a ``#fragment``): Sphinx's ``linkcheck`` would need the network. Last, headless Chromium
(the ``browser`` fixture of conftest.py, as tests/test_report_browser.py uses it) loads
``index.html`` and a family page: every image on them must be loaded (``naturalWidth > 0``)
and the formulas typeset by the MathJax shipped in ``_static``. The link checker and the image
check each have a negative control. All in one test, so that ``pytest -n 2`` never runs two
builds over the same ``docs/`` folder (the gallery and the tour write there). The code blocks
of the pages run as separate tests.
"""

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAMILY_PAGE = "families/mixture.html"          # four tour figures


def build_html(out: Path) -> Path:
    """Build docs/ into ``out/html`` with warnings as errors; returns the HTML folder."""
    try:
        import sphinx  # noqa: F401
    except ImportError:
        pytest.fail("Sphinx is not installed: `make docs` (or `make test-slow`) installs the "
                    "`docs` extra of pyproject.toml")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
        cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stderr[-6000:]}"
    # -W makes any warning an error; Sphinx prints them as "path:line: WARNING: ..."
    assert ": WARNING:" not in proc.stderr and ": ERROR:" not in proc.stderr, proc.stderr[-6000:]
    return out / "html"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def broken_links(site: Path) -> list[str]:
    """``page: link`` for every relative href/src of ``site/**/*.html`` that names no file, or
    a fragment that names no id in its target page."""
    pages = {page: _parse(page) for page in site.rglob("*.html")}
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link}")
    return broken


def test_the_link_checker_catches_a_broken_link(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text('<p id="top"><a href="sub/b.html#x">b</a>'
                                     '<a href="sub/missing.html">m</a><img src="c.png">'
                                     '<a href="#top">t</a><a href="#gone">g</a>'
                                     '<a href="https://example.org/x">e</a></p>')
    (tmp_path / "sub" / "b.html").write_text('<p id="x"><a href="../a.html">a</a></p>')
    assert broken_links(tmp_path) == ["a.html: sub/missing.html", "a.html: c.png",
                                      "a.html: #gone"]


_CHECK_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<iframe id="index" src="site/index.html" width="1000" height="800"></iframe>
<iframe id="family" src="site/{family}" width="1000" height="800"></iframe>
<iframe id="broken" src="broken/{family}" width="1000" height="800"></iframe>
<script>
window.addEventListener("load", function () {{ setTimeout(function () {{
  // (virtual) seconds after the load event, so MathJax has typeset the formulas
  var out = {{}};
  ["index", "family", "broken"].forEach(function (id) {{
    var doc = document.getElementById(id).contentDocument;
    out[id] = doc ? {{title: doc.title,
      formulas: doc.querySelectorAll("mjx-container").length,
      images: Array.prototype.map.call(doc.images, function (img) {{
        return {{src: img.getAttribute("src"), complete: img.complete,
                naturalWidth: img.naturalWidth}};
      }})}} : null;
  }});
  var pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}}, 5000); }});
</script></body></html>"""


def check_pages(built_html: Path) -> None:
    pages = sorted(p.relative_to(built_html).as_posix() for p in built_html.rglob("*.html"))
    for expected in ("index.html", "getting_started.html", "conventions.html",
                     "benchmarks.html", FAMILY_PAGE, "api/index.html", "api/mixture.html",
                     "examples/index.html", "examples/gan.html"):
        assert expected in pages
    examples = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    assert all(f"examples/{name}.html" in pages for name in examples)
    # every example ran: the gallery page shows what it printed
    for name in examples:
        assert "sphx-glr-script-out" in (built_html / "examples" / f"{name}.html").read_text()


def check_images_in_chromium(built_html: Path, dump_check_page, tmp_path: Path) -> None:
    root = tmp_path / "served"
    shutil.copytree(built_html, root / "site")
    # negative control: the family page with its first figure removed
    broken = shutil.copytree(built_html, root / "broken")
    first = re.search(r'<img[^>]*src="([^"]+)"', (broken / FAMILY_PAGE).read_text()).group(1)
    (broken / FAMILY_PAGE).parent.joinpath(first).resolve().unlink()
    (root / "check.html").write_text(_CHECK_PAGE.format(family=FAMILY_PAGE))
    result = dump_check_page(root, 15000, 180)
    assert "espresso_jax" in result["index"]["title"]
    assert "Mixtures" in result["family"]["title"]
    assert result["family"]["formulas"] >= 5       # MathJax (shipped with the pages) ran
    family = result["family"]["images"]
    assert len(family) >= 4, family                                      # the tour's figures
    for page in ("index", "family"):
        not_loaded = [img for img in result[page]["images"]
                      if not (img["complete"] and img["naturalWidth"] > 0)]
        assert not_loaded == [], (page, not_loaded)
    loaded = {img["src"]: img["naturalWidth"] > 0 for img in result["broken"]["images"]}
    assert loaded[first] is False and sum(loaded.values()) == len(loaded) - 1


@pytest.mark.slow
def test_docs_build_without_warnings_with_resolving_links_and_loading_images(tmp_path, request):
    # one test, so that `pytest -n 2` never runs two builds over the same docs/ folder
    built_html = build_html(tmp_path / "docs")
    check_pages(built_html)
    assert broken_links(built_html) == []
    check_images_in_chromium(built_html, request.getfixturevalue("dump_check_page"), tmp_path)


def _snippets():
    pages = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "families").glob("*.md"))
    return [pytest.param(code, id=f"{page.stem}-{i}") for page in pages
            for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))]


def test_the_pages_have_snippets():
    assert len(_snippets()) >= 11      # getting started, conventions and one per family page


@pytest.mark.slow
@pytest.mark.parametrize("code", _snippets())
def test_page_snippet_runs(code, tmp_path):
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()
