"""Code shared by the RTInjurySAM and ITV4DCT modules: MRML <-> rtsam conversion (the one
place where Slicer's RAS meets rtsam's LPS), backends (local / remote), segment helpers."""
