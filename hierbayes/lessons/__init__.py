"""Teaching and checking the method: the MAP against the posterior mean, centered against
non-centered geometry (``teaching``), simulation-based calibration (``calibration``), and the
ICC of clustered data by one-way ANOVA (``clustered``)."""
