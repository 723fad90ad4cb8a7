"""Stage 5, showing a fit: plots (shrinkage, forest, trace, pair, predictive check) and the HTML report."""
