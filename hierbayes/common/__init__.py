"""The ground every stage stands on: hierbayes's errors and warnings (``errors``), heavy
dependencies imported when first used (``deferred``) and the package version (``version``)."""
