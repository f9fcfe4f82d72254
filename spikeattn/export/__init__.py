"""Export feed-forward SNNs to a torch-free Lava artifact and run it in Lava (``.venv-lava``); NIR and netx files."""

from spikeattn.export.artifact import LavaArtifact, open_artifact
from spikeattn.export.graph import NotExportable, build_graph, fold_batchnorm
from spikeattn.export.lava import LavaError, run_lava, to_lava
from spikeattn.export.loihi import LoihiReport, loihi_report
from spikeattn.export.loihi_profile import LoihiProfile, load_loihi_profile
from spikeattn.export.netx import to_netx
from spikeattn.export.netx_qat import quantize_for_netx
from spikeattn.export.nir import to_nir
from spikeattn.export.nir_import import from_nir
from spikeattn.export.per_step import PerStep

__all__ = ["to_lava", "run_lava", "to_nir", "from_nir", "to_netx", "quantize_for_netx", "NotExportable", "LavaError", "LavaArtifact",
           "open_artifact", "PerStep", "fold_batchnorm", "build_graph", "loihi_report", "LoihiReport", "LoihiProfile",
           "load_loihi_profile"]
