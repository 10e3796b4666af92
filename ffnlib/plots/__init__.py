"""Figures for the notebooks: every function returns a matplotlib Figure and never calls plt.show()."""
