"""Console entry points (``ifualign-example``)."""
