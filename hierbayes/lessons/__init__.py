"""Teaching and checking the method: centered against non-centered geometry (``teaching``), the
joint MAP, the marginal mode and the posterior mean (``modes``, ``marginal_mode``), simulation-based
calibration (``calibration``), and the ICC of clustered data by one-way ANOVA (``clustered``)."""
