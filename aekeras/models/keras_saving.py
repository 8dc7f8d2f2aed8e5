"""A mend to Keras's saving: its cache of the attributes a save skips, which never hits.

Keras 3 (3.15 among them) stores `get_attr_skipset`'s answer under
`saving_attr_skipset_<type>` and looks for it under
`saving_attr_skiplist_<type>`, so every `save`, `save_weights` and load
builds its reference objects again (a `Layer`, an `Optimizer` with its
variables, a `Metric`, ...): 60-70 KB of memory the process never got back
per save, whatever the model's size. A training run saves twice an epoch
(its checkpoint and its backup): its memory grew 150 KB an epoch, 60 MB over
400 epochs, and saving took a quarter longer.
"""

import functools

from keras.src.saving import saving_lib


def cache_attribute_skipsets():
    """Makes Keras remember each type's skipped attributes, which depend on the type alone; once per process.

    A Keras without the function (a later version's saving) is left as it is.
    """
    skipset = getattr(saving_lib, "get_attr_skipset", None)
    if skipset is not None and not hasattr(skipset, "cache_info"):
        saving_lib.get_attr_skipset = functools.cache(skipset)
