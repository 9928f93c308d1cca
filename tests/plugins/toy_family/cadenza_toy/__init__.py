"""A toy generator family: it plays scales. It exists to show (and test) that a family joins Cadenza
through the ``cadenza.families`` entry point group alone."""
