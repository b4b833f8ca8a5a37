"""ITV4DCT backend: 4DCT in, per-phase segmentation, phase-coherent filtering, ITV out."""

from .filters import FilterResult, filter_phases, temporal_vote
from .generator import Generated4DCT, make_4dct
from .phases import Phases, load_phases, make_phases
from .pipeline import ITVResult, run_itv

__all__ = ["FilterResult", "Generated4DCT", "ITVResult", "Phases", "filter_phases", "load_phases", "make_4dct",
           "make_phases", "run_itv", "temporal_vote"]
