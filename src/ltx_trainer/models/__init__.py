"""Everything that knows a model family. The only package that imports diffusers model classes."""

import diffusers
import transformers

# Tiny and local loads finish in milliseconds; the libraries' per-shard progress bars are only noise.
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()
