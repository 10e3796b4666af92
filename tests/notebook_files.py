"""Tiny notebooks written by the tests: a `parameters` cell and some code cells."""
import nbformat
from nbformat.v4 import new_code_cell, new_notebook


def write_notebook(path, params_source, *cells):
    params = new_code_cell(params_source)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path
