"""Notebooks 02 and 08 in JupyterLab, in a real browser (headless Chromium), as a person runs them.

`make test-browser` runs this; `tests/browser/conftest.py` builds the run folder (notebooks 04 and
07 at smoke size), starts JupyterLab and opens each notebook with Run All. The checks read what the
page shows: JupyterLab's output areas, ipywidgets' elements and the images in them.
"""
from __future__ import annotations

import pytest

from lab_driver import STDERR

WIDGET = ".widget-interact"  # ipywidgets' interact / interactive: controls and an output area
FIGURE = f"{WIDGET} .widget-output img"


def test_the_lab_says_where_the_notebooks_look(lab):
    """The newcomer's path: `make demo` (here: its command at smoke size), then `make lab`, which first
    says which run folder the notebooks read and what is trained there; 08 then finds those models."""
    first, trained, _ = lab.where.splitlines()
    assert first.startswith("notebooks read and write ") and "(the profile smoke, FFN_SMOKE=1 is set;" in first
    assert trained == f"  trained there: {', '.join(smoke_models())} (notebooks 05 and 08 show them; " \
                      "04 and 07 train only what is missing)"


def smoke_models() -> list[str]:
    """The model folders notebooks 04 and 07 train with the smoke profile, by the names its parameters give."""
    from ffnlib import profiles

    settings = profiles.load_profile("smoke")
    tsm = profiles.profile_parameters(settings, profiles.find_notebook("04"))
    ffn = profiles.profile_parameters(settings, profiles.find_notebook("07"))
    return sorted(["vanilla_16f", *(f"st_{t}f" for t in tsm["st_frame_counts"]),
                   *(f"finetune_{t}f" for t in tsm["finetune_frame_counts"]), *ffn["models"]])


def test_no_cell_shows_an_error_or_stderr(executed):
    notebook = executed.notebook
    failing = notebook.page.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']")
    with executed.kept_on_failure("stderr", failing):
        unrun = [c["prompt"] for c in notebook.cell_states() if not c["empty"] and not c["prompt"].strip("[]: ").isdigit()]
        assert not unrun, f"{notebook.name}: cells left unrun after Run All: {unrun}"
        assert notebook.stderr_outputs() == [], f"{notebook.name}: error or stderr output"


def test_every_widget_draws(executed):
    notebook = executed.notebook
    page = notebook.page
    with executed.kept_on_failure("widgets", page.locator(WIDGET)):
        assert notebook.broken_widgets() == []
        views = page.locator(WIDGET)
        assert views.count() >= 1, f"{notebook.name}: no interactive view"  # both notebooks have one
        for k in range(views.count()):
            view = views.nth(k)
            assert view.locator("select").count() >= 1
            figure = view.locator(".widget-output img").first
            figure.wait_for(timeout=60_000)
            assert figure.evaluate("img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100")


def test_each_view_draws_one_figure(executed):
    images = executed.notebook.output_images()
    repeated = len(images) - len(set(images))
    with executed.kept_on_failure("repeated-figure"):
        assert repeated == 0, f"{executed.notebook.name}: {repeated} figure(s) drawn twice (the same PNG bytes)"


def test_changing_a_dropdown_redraws_the_figure(executed):
    notebook = executed.notebook
    page = notebook.page
    views = page.locator(WIDGET)
    for k in range(views.count()):
        view = views.nth(k)
        with executed.kept_on_failure(f"dropdown-{k}", view):
            select = view.locator("select").first
            before = view.locator(".widget-output img").first.get_attribute("src")
            options = select.locator("option").count()
            assert options >= 2, "a dropdown with one choice cannot change the figure"
            current = select.evaluate("s => s.selectedIndex")
            select.select_option(index=(current + 1) % options)
            page.wait_for_function(
                """([view, before]) => {
                  const img = view.querySelector('.widget-output img');
                  return img !== null && img.src !== before && img.complete && img.naturalWidth > 100;
                }""", arg=[view.element_handle(), before], timeout=120_000, polling=250)
            notebook.wait_kernel_idle()
            after = view.locator(".widget-output img").first.get_attribute("src")
            assert after != before  # other PNG bytes: the figure was drawn again, for the new choice
            assert view.locator(".widget-output img").count() == 1  # the new figure replaced the old one
            assert notebook.stderr_outputs() == [], "the redraw wrote an error or stderr"
