"""Open a generated report in headless Chromium and check that every figure loads.

Chromium is driven without Python packages: a wrapper page served with the report over a local
HTTP server frames the report; after the load event (which waits for the frames and their
images) its script writes each <img>'s ``naturalWidth`` into the DOM, which
``chromium --headless --dump-dom`` prints. A copy of the report with one PNG removed is the
negative control (its image must be reported as not loaded).

The browser is Debian's ``chromium`` package, found (or installed) by the ``browser`` fixture of
``conftest.py``, which tests/test_docs_build.py shares.
"""

import shutil
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np

from espresso_jax.apps.report import Report


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


_CHECK_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<iframe id="good" src="good/index.html" width="800" height="600"></iframe>
<iframe id="broken" src="broken/index.html" width="800" height="600"></iframe>
<script>
window.addEventListener("load", function () {
  var out = {};
  ["good", "broken"].forEach(function (id) {
    var doc = document.getElementById(id).contentDocument;
    out[id] = doc ? Array.prototype.map.call(doc.images, function (img) {
      return {src: img.getAttribute("src"), complete: img.complete,
              naturalWidth: img.naturalWidth};
    }) : null;
  });
  var pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body></html>"""


def _report(out_dir):
    report = Report(out_dir, title="browser check")
    report.section("Lines", "two tiny figures")
    for name in ("line", "scatter"):
        fig, ax = plt.subplots(figsize=(2, 1.5))
        x = np.linspace(0.0, 1.0, 20)
        ax.plot(x, x ** 2) if name == "line" else ax.scatter(x, np.sin(6 * x))
        report.figure(fig, name, f"a {name}")
    report.metrics({"value": 1.0})
    return report.write()


def test_every_report_figure_loads_in_headless_chromium(tmp_path, dump_check_page):
    good = _report(tmp_path / "site" / "good")
    sources = _Images()
    sources.feed((good / "index.html").read_text())
    assert sources.sources == ["line.png", "scatter.png"]
    broken = shutil.copytree(good, tmp_path / "site" / "broken")
    (broken / "scatter.png").unlink()                     # negative control
    (tmp_path / "site" / "check.html").write_text(_CHECK_PAGE)

    result = dump_check_page(tmp_path / "site", 10000, 120)
    assert [img["src"] for img in result["good"]] == sources.sources    # every <img> seen
    assert all(img["complete"] and img["naturalWidth"] > 0 for img in result["good"])
    loaded = {img["src"]: img["naturalWidth"] > 0 for img in result["broken"]}
    assert loaded == {"line.png": True, "scatter.png": False}          # the check can fail
