"""Teaching and checking the method: the MAP against the posterior mean, centered against
non-centered geometry (``teaching``), and simulation-based calibration (``calibration``)."""
