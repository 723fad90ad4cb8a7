"""Stage 1, the specification: formula text and a DataFrame become a validated design.

``formula`` parses the lme4/brms formula into a :class:`~hierbayes.specification.formula.ModelSpec`;
``design`` evaluates it over the data into arrays (:class:`~hierbayes.specification.design.Design`);
``readers`` reads data files; ``families`` and ``priors`` are the registries of likelihoods
and prior distributions; ``names`` builds every label, variable, data and dim name;
``parameters`` lists every parameter as users see it, with its prior; and
``linear_predictor`` computes the linear predictor from design arrays and draws.

Nothing here knows PyMC models, samplers or fits.
"""
