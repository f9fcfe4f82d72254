"""One training recipe per model family: a config dataclass and a function that runs it.

The command line (`spikeattn train ...`, `spikeattn pretrain`), the examples and `make demo` all call
these, so one set of defaults (the measured ones) serves them all.
"""

from spikeattn.recipes.flags import add_flags, from_flags
from spikeattn.recipes.out_dir import check_out_dir, next_free_dir
from spikeattn.recipes.spikegpt import SpikeGPTRecipe, fit_spikegpt
from spikeattn.recipes.spikformer import MODEL_NAME, SpikformerRecipe, fit_spikformer
from spikeattn.recipes.spikformer_v2 import V2PretrainRecipe, pretrain_spikformer_v2, v2_finetune_recipe

__all__ = ["SpikformerRecipe", "fit_spikformer", "SpikeGPTRecipe", "fit_spikegpt", "V2PretrainRecipe",
           "pretrain_spikformer_v2", "v2_finetune_recipe", "MODEL_NAME", "add_flags", "from_flags",
           "check_out_dir", "next_free_dir"]
