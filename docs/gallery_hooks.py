"""sphinx-gallery hooks of the example gallery, named by string in ``conf.py`` (so Sphinx can
pickle the configuration).

- :func:`argv`: the command-line arguments of each example (its ``reset_argv``): scripts with a
  ``--quick`` option run with it, as ``tests/test_examples.py`` runs them.
- :func:`saved_pngs`: the image scraper. The examples save their figures as PNG files (some
  close them after saving, so matplotlib's own scraper would miss those); this one collects
  every PNG the script wrote under its folder, in sorted order of their paths, and moves them
  to the gallery's image names (``sphx_glr_<script>_001.png``, ...), so the next script starts
  from none; it closes the script's matplotlib figures too (matplotlib's scraper would have).
"""

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
from sphinx_gallery.scrapers import figure_rst

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    """``sys.argv[1:]`` for the example at ``script_vars["src_file"]``."""
    source = (EXAMPLES / Path(script_vars["src_file"]).name).read_text()
    return ["--quick"] if "--quick" in source else []


def saved_pngs(block, block_vars: dict, gallery_conf: dict) -> str:
    """rst for the PNG files the example wrote below its folder (moved to the gallery)."""
    folder = Path(block_vars["src_file"]).parent
    found = sorted(folder.rglob("*.png"), key=lambda p: p.relative_to(folder).as_posix())
    paths = []
    # strict=False: the iterator hands out as many image names as asked for
    for png, target in zip(found, block_vars["image_path_iterator"], strict=False):
        shutil.move(png, target)
        paths.append(target)
    plt.close("all")
    return figure_rst(paths, gallery_conf["src_dir"]) if paths else ""
