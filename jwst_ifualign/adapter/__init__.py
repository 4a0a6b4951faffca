"""The adapter layer: between stdatamodels/gwcs and the numpy algorithms.

Reads and checks the members (:mod:`.inputs`), places them through their WCS
(:mod:`.wcs_mapping`), measures (:mod:`.measurement`), resamples and combines
(:mod:`.assembly`), and builds the outputs (:mod:`.outputs`, :mod:`.diagnostics`). The step's
parameters and the options type are defined once in :mod:`.parameters`.
:func:`.align.align_members` is its top. Nothing here knows about stpipe.
"""
