"""Stage 2, the model: a design and its priors written as a PyMC model.

``definition`` holds the validated model (formula, data, family, priors, the chosen
parameterization and whether the group effects are integrated out); ``data`` is the
sampler's data contract (every ``pm.Data`` value, the starting point, the structure key);
``pymc_model`` writes the PyMC model; ``parameterizations`` draws a factor's group effects,
one class per parameterization, ``coordinates`` holds the pure helpers behind them and
``parameterization`` the ``"auto"`` choice among them;
``collapsed`` and ``marginal_likelihood`` integrate Gaussian group effects out exactly.

Depends on :mod:`hierbayes.specification` only.
"""
