"""Hugging Face wrappers of a bertsmith encoder (written by bertsmith's export).

``AutoModel``, ``AutoModelForSequenceClassification``, ``AutoModelForMaskedLM`` and
``AutoModelForQuestionAnswering`` load this directory with ``trust_remote_code=True``. The network
itself is the pure-torch bertsmith modules copied beside this file (``encoder.py`` and the files it
imports); this file only adapts them to ``PreTrainedModel``: weight names are the bertsmith ones
(``embeddings.word.weight``, ``layers.0.attention.qkv.weight``, ...; ``encoder.``-prefixed in the head
models), so a base model loads from a head checkpoint and the other way round, as with any
transformers model.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
)

from .configuration_bertsmith import BertsmithConfig
from .encoder import BertsmithForMaskedLM as _MaskedLMCore
from .encoder import BertsmithForQuestionAnswering as _QuestionAnsweringCore
from .encoder import BertsmithForSequenceClassification as _ClassifierCore
from .encoder import BertsmithModel as _EncoderCore


def spec_namespace(spec: dict) -> SimpleNamespace:
    """The spec dict as nested namespaces: the modules read ``spec.layers[i].attention.heads`` etc."""

    def wrap(value):
        if isinstance(value, dict):
            return SimpleNamespace(**{k: wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return tuple(wrap(v) for v in value)
        return value

    return wrap(spec)


def _adopt(target: nn.Module, source: nn.Module) -> None:
    """Give ``target`` the submodules, parameters, buffers and plain attributes of ``source`` under
    the same names, so that ``type(source).forward(target, ...)`` runs the bertsmith forward."""
    for name, module in source._modules.items():
        target._modules[name] = module
    for name, param in source._parameters.items():
        target.register_parameter(name, param)
    for name, buf in source._buffers.items():
        target.register_buffer(name, buf, persistent=name not in source._non_persistent_buffers_set)
    own = vars(target)
    for name, value in vars(source).items():
        if not name.startswith("_") and name != "training" and name not in own:
            object.__setattr__(target, name, value)


class BertsmithPreTrainedModel(PreTrainedModel):
    config_class = BertsmithConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = False
    _no_split_modules = ["Layer"]

    @torch.no_grad()
    def _init_weights(self, module):
        """BERT initialisation (as bertsmith's ``init_weights``) for weights missing from a checkpoint."""
        super()._init_weights(module)  # Linear, Conv1d, Embedding (zero padding row), LayerNorm
        try:
            from transformers import initialization as init  # transformers >= 5: skips loaded weights
        except ImportError:  # transformers 4
            init = nn.init
        if type(module).__name__ == "GroupedLinear":
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)
        conv_bias = module._parameters.get("conv_bias")
        if conv_bias is not None:
            init.zeros_(conv_bias)

    def _output_flags(self, output_hidden_states, output_attentions, return_dict):
        cfg = self.config
        return (
            bool(cfg.output_hidden_states if output_hidden_states is None else output_hidden_states),
            bool(getattr(cfg, "output_attentions", False) if output_attentions is None else output_attentions),
            bool(getattr(cfg, "return_dict", True) if return_dict is None else return_dict),
        )


class BertsmithModel(BertsmithPreTrainedModel):
    """The bare encoder: ``last_hidden_state``, ``pooler_output`` (None without a pooler),
    ``hidden_states`` (embeddings + every layer) and ``attentions`` (pre-softmax scores)."""

    def __init__(self, config: BertsmithConfig, _core: nn.Module | None = None):
        super().__init__(config)
        core = _core if _core is not None else _EncoderCore(spec_namespace(config.spec))
        _adopt(self, core)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word

    def set_input_embeddings(self, value):
        self.embeddings.word = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        hidden, attentions, return_dict = self._output_flags(output_hidden_states, output_attentions, return_dict)
        out = _EncoderCore.forward(
            self, input_ids, attention_mask, token_type_ids, output_hidden_states=hidden, output_attentions=attentions
        )
        result = BaseModelOutputWithPooling(
            last_hidden_state=out.last_hidden_state,
            pooler_output=out.pooler_output,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return result if return_dict else result.to_tuple()


class _TaskModel(BertsmithPreTrainedModel):
    """An encoder with a task head. The bertsmith module ``_core_class`` is the network: this model adopts
    its submodules and weights, and ``self.encoder`` is its encoder as a ``BertsmithModel``."""

    _core_class: type[nn.Module]

    def __init__(self, config: BertsmithConfig, **core_options):
        super().__init__(config)
        core = self._core_class(spec_namespace(config.spec), **core_options)
        _adopt(self, core)
        self.encoder = BertsmithModel(config, _core=core.encoder)
        self.post_init()

    def _run(self, input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions, return_dict):
        """The head's logits, the encoder's outputs (a dict-like output) and whether to return a dict."""
        hidden, attentions, return_dict = self._output_flags(output_hidden_states, output_attentions, return_dict)
        logits, out = self._core_class.forward(
            self,
            input_ids,
            attention_mask,
            token_type_ids,
            output_hidden_states=hidden,
            output_attentions=attentions,
            return_dict=True,
        )
        return logits, out, return_dict


class BertsmithForSequenceClassification(_TaskModel):
    """Encoder + classification head (``num_labels == 1``: regression)."""

    _core_class = _ClassifierCore

    def __init__(self, config: BertsmithConfig):
        super().__init__(config, num_labels=config.num_labels)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        logits, out, return_dict = self._run(
            input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions, return_dict
        )
        loss = None
        if labels is not None:
            problem = self.config.problem_type
            if problem is None:
                if self.num_labels == 1:
                    problem = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    problem = "single_label_classification"
                else:
                    problem = "multi_label_classification"
            if problem == "regression":
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
            elif problem == "single_label_classification":
                loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        result = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return result if return_dict else result.to_tuple()


class BertsmithForMaskedLM(_TaskModel):
    """Encoder + MLM head; the decoder weight is tied to the token embeddings."""

    _tied_weights_keys = {"decoder.weight": "encoder.embeddings.word.weight"}

    _core_class = _MaskedLMCore

    def get_output_embeddings(self):
        return self.decoder

    def set_output_embeddings(self, new_embeddings):
        self.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        logits, out, return_dict = self._run(
            input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions, return_dict
        )
        loss = None
        if labels is not None:  # -100: ignored positions
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
        result = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return result if return_dict else result.to_tuple()


class BertsmithForQuestionAnswering(_TaskModel):
    """Encoder + extractive QA head: a start and an end logit for every token."""

    _core_class = _QuestionAnsweringCore

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        logits, out, return_dict = self._run(
            input_ids, attention_mask, token_type_ids, output_hidden_states, output_attentions, return_dict
        )
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:  # as BertForQuestionAnswering
            ignored = start_logits.size(1)  # positions outside the sequence are ignored
            start = start_positions.view(-1).clamp(0, ignored)
            end = end_positions.view(-1).clamp(0, ignored)
            loss = (
                nn.functional.cross_entropy(start_logits, start, ignore_index=ignored)
                + nn.functional.cross_entropy(end_logits, end, ignore_index=ignored)
            ) / 2
        result = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return result if return_dict else result.to_tuple()
