"""stpipe entry point: lists the steps and pipelines of this package without importing them."""

__all__ = ["get_steps"]


def get_steps():
    """Return ``[(class path, alias, is_pipeline), ...]`` for ``[project.entry-points."stpipe.steps"]``.

    This makes ``strun ifu_align``, ``strun calwebb_ifualign``, ``strun jwst_ifualign::ifu_align``
    and ``stpipe list`` work.
    """
    return [
        ("jwst_ifualign.step.IFUAlignStep", "ifu_align", False),
        ("jwst_ifualign.pipeline.IFUAlignPipeline", "calwebb_ifualign", True),
    ]
