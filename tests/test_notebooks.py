"""Source notebooks are committed clean, and the cleaner does what `make clean-notebooks` promises."""
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from ffnlib import profiles
from ffnlib.notebooks import CHECK_MARK, clean, main, problems, where


@pytest.mark.parametrize("path", profiles.notebooks(), ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert problems(nb) == [], f"{path.name}: run `make clean-notebooks`"


@pytest.mark.parametrize("path", profiles.notebooks(), ids=lambda p: p.stem)
def test_notebook_follows_the_workbook_shape(path):
    """A parameters cell, one call that checks it right after, short code cells, and checked cells that
    hold their output."""
    nb = nbformat.read(path, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    index = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert nb.cells[index - 1].cell_type == "markdown" and nb.cells[index - 1].source.startswith("## Parameters")
    assert nb.cells[index + 1].source.startswith(f'p = profiles.notebook_parameters("{path.stem}", globals())')
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.startswith(CHECK_MARK):
            assert cell.outputs, f"{path.name}: a checked cell without a stored output checks nothing"
        if cell.cell_type == "code" and i != index:
            assert len(cell.source.splitlines()) <= 15, f"{path.name}: cell {i} is longer than 15 lines"
        assert "pip install" not in cell.source and "import *" not in cell.source


def dirty_notebook():
    executed = new_code_cell("print(1)", execution_count=3,
                             outputs=[new_output("stream", name="stdout", text="1\n")])
    checked = new_code_cell(f"{CHECK_MARK}\n1 + 1", execution_count=4,
                            outputs=[new_output("execute_result", data={"text/plain": "2"}, execution_count=4)])
    executed.metadata["papermill"] = {"duration": 1.0}
    nb = new_notebook(cells=[new_markdown_cell("# t"), executed, checked])
    nb.metadata["papermill"] = {"parameters": {}}
    return nb


def test_problems_name_what_is_dirty():
    found = problems(dirty_notebook())
    assert "notebook metadata 'papermill'" in found
    assert "cell 1: execution count" in found and "cell 1: metadata ['papermill']" in found
    assert f"cell 1: outputs in a cell not marked {CHECK_MARK}" in found
    assert "cell 2: execution count in an output" in found


def test_clean_keeps_only_the_checked_outputs():
    nb = clean(dirty_notebook())
    assert problems(nb) == []
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "2"


def test_where_says_which_run_folder_the_notebooks_use_and_what_it_holds(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("FFN_SMOKE", raising=False)
    monkeypatch.setenv("FFN_RUNS_DIR", str(tmp_path))
    first, empty, _ = where().splitlines()
    assert first.startswith(f"notebooks read and write {tmp_path / 'demo'} (the profile demo, every notebook's default;")
    assert "nothing trained there yet" in empty
    for name in ("vanilla_16f", "ffn"):
        (tmp_path / "demo" / "models" / name / "checkpoints").mkdir(parents=True)
        (tmp_path / "demo" / "models" / name / "checkpoints" / "best.pt").write_bytes(b"")
    (tmp_path / "demo" / "models" / "st_4f").mkdir()  # started, never finished: not listed
    assert where().splitlines()[1].startswith("  trained there: ffn, vanilla_16f (")
    monkeypatch.setenv("FFN_SMOKE", "1")
    assert main(["where"]) == 0
    assert f"notebooks read and write {tmp_path / 'smoke'} (the profile smoke, FFN_SMOKE=1 is set;" in capsys.readouterr().out
