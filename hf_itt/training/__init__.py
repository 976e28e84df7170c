"""Model, trainer, arguments and samplers. Importing it filters transformers' report of the unused
pre-training head that every ``MultiTaskModel.from_encoder`` load would print (``hf_itt.console``)."""

from hf_itt.console import install_warning_filters

install_warning_filters()
