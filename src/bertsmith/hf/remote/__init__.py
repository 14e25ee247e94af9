"""Templates of the remote-code files that ``export_pretrained`` writes next to a model.

``configuration_bertsmith.py`` and ``modeling_bertsmith.py`` are copied verbatim into an exported
directory, beside copies of the pure-torch files of ``bertsmith.modeling``; transformers loads them
with ``trust_remote_code=True``. They are not imported by bertsmith itself (``modeling_bertsmith``
imports its siblings ``.encoder`` and ``.configuration_bertsmith`` relatively, which only exist in
an exported directory).
"""
