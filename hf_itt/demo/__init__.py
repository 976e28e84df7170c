"""The offline demo: a synthetic multilingual world (``world``, ``lexicon``) and its tiny base model (``build``)."""
