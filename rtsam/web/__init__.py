"""``rtsam web``: a browser viewer (trame + trame-slicer) over the RTInjurySAM and ITV4DCT module logics.

Needs the ``web`` extra (trame-slicer, slicer-layer-dm) and the ``slicer`` extra (slicer-core, vtk).
"""
