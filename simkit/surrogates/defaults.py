"""Defaults of the surrogates' settings that ``simkit surrogate``'s options show, here so
that the command line reads them without importing torch (:class:`~simkit.surrogates.base.
Surrogate` takes them as its keyword defaults)."""

#: Events per optimizer step.
BATCH_SIZE = 256
#: Model the relative azimuthal angles in the first angle's frame (:mod:`.transforms`).
AZIMUTH_FRAME = True
