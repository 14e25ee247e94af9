"""The encoder built from an ArchSpec: embeddings, post-LN layers of any registered kinds, pooler,
and task heads (sequence classification / regression, extractive QA, masked LM).

The modules read the spec by attribute only (``spec.hidden``, ``spec.layers[i].attention.heads``,
...), so they run on an ArchSpec or on the same data as plain namespaces: this package folder is
copied next to exported models and works there without bertsmith installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .expr import ACTIVATIONS
from .fast import dropout, tracing
from .ffn import GroupedLinear
from .registry import ATTENTION, FFN


@dataclass
class EncoderOutput:
    """``hidden_states`` holds the embedding output and every layer's output (L+1 tensors);
    ``attentions`` holds every layer's pre-softmax attention scores [B, a_i, T, T] (mask added)."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class Embeddings(nn.Module):
    """Token + position (+ segment) embeddings, LayerNorm, dropout; factorized or trigram variants
    as described in ``EmbeddingSpec``."""

    def __init__(self, spec):
        super().__init__()
        emb, hidden = spec.embeddings, spec.hidden
        e = emb.size or hidden
        self.trigram = emb.trigram
        self.roberta_positions = emb.positions == "roberta"
        self.pad_token_id = emb.pad_token_id
        width = hidden if (emb.trigram or emb.size is None) else e
        self.word = nn.Embedding(emb.vocab_size, e, padding_idx=emb.pad_token_id)
        self.position = nn.Embedding(emb.max_positions, width)
        self.token_type = nn.Embedding(emb.type_vocab_size, width) if emb.type_vocab_size else None
        self.norm = nn.LayerNorm(width, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout)
        self.project = None
        if emb.trigram:
            self.project = nn.Linear(3 * e, hidden)
        elif emb.size is not None:
            self.project = nn.Linear(e, hidden)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.word(input_ids)
        if self.trigram:  # MobileBERT order: next token, this token, previous token
            nxt = F.pad(x[:, 1:], (0, 0, 0, 1))
            prev = F.pad(x[:, :-1], (0, 0, 1, 0))
            x = self.project(torch.cat([nxt, x, prev], dim=-1))
        if self.roberta_positions:
            keep = input_ids.ne(self.pad_token_id).int()
            positions = torch.cumsum(keep, dim=1) * keep + self.pad_token_id
        else:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = x + self.position(positions)
        if self.token_type is not None:
            if token_type_ids is None:
                x = x + self.token_type.weight[0]
            else:
                x = x + self.token_type(token_type_ids)
        x = dropout(self.norm(x), self.dropout)
        if self.project is not None and not self.trigram:
            x = self.project(x)
        return x

    @staticmethod
    def count_params(spec) -> int:
        emb, hidden = spec.embeddings, spec.hidden
        e = emb.size or hidden
        width = hidden if (emb.trigram or emb.size is None) else e
        n = emb.vocab_size * e + (emb.max_positions + emb.type_vocab_size + 2) * width
        if emb.trigram:
            n += (3 * e + 1) * hidden
        elif emb.size is not None:
            n += (e + 1) * hidden
        return n

    @staticmethod
    def count_flops(spec, seq_len: int) -> int:
        emb = spec.embeddings
        if emb.size is None:
            return 0
        return 2 * seq_len * (3 if emb.trigram else 1) * emb.size * spec.hidden


class Layer(nn.Module):
    """One post-LN block: attention (with its residual and LayerNorm), then the FFN (likewise)."""

    def __init__(self, layer, spec):
        super().__init__()
        eps, drop = spec.layer_norm_eps, spec.hidden_dropout
        self.attention = ATTENTION[layer.attention.kind](
            layer.attention, spec.hidden, eps=eps, dropout=drop, attention_dropout=spec.attention_dropout
        )
        self.ffn = FFN[layer.ffn.kind](layer.ffn, spec.hidden, eps=eps, dropout=drop)

    def forward(self, x, mask, want_scores: bool = False):
        x, scores = self.attention(x, mask, want_scores)
        return self.ffn(x), scores


class RelativePositionBias(nn.Module):
    """MPNet's relative position bias (T5's bidirectional buckets): the offset of each key from each
    query falls in one of ``buckets`` (half per direction; within each half, offsets below a quarter of
    the buckets exactly, larger ones logarithmically up to ``max_distance``), and each bucket holds one
    learned bias per head. One table serves every layer; a layer with a heads uses the first a columns."""

    def __init__(self, buckets: int, heads: int, max_distance: int = 128):
        super().__init__()
        self.buckets, self.max_distance = buckets, max_distance
        self.bias = nn.Embedding(buckets, heads)

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        half = self.buckets // 2
        exact = half // 2
        n = -relative
        out = (n < 0).long() * half
        n = n.abs()
        far = exact + (torch.log(n.float() / exact) / math.log(self.max_distance / exact) * (half - exact)).long()
        return out + torch.where(n < exact, n, far.clamp(max=half - 1))

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        """The bias [1, heads, length, length] added to the attention scores."""
        position = torch.arange(length, device=device)
        return self.bias(self.bucket(position[None, :] - position[:, None])).permute(2, 0, 1).unsqueeze(0)


class BertsmithModel(nn.Module):
    """The bare encoder: embeddings, layers, optional tanh pooler on the first token."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.embeddings = Embeddings(spec)
        self.layers = nn.ModuleList(Layer(layer, spec) for layer in spec.layers)
        buckets = getattr(spec, "relative_attention_buckets", 0)  # exported spec dicts omit the default
        heads = max(layer.attention.heads for layer in spec.layers)
        self.relative = RelativePositionBias(buckets, heads) if buckets else None
        self.pooler = nn.Linear(spec.hidden, spec.hidden) if spec.pooler else None
        init_weights(self, spec.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        x = self.embeddings(input_ids, token_type_ids)
        mask = additive_mask(attention_mask, x.dtype)
        bias = self.relative(x.shape[1], x.device).to(x.dtype) if self.relative is not None else None
        hidden = [x] if output_hidden_states else None
        scores = [] if output_attentions else None
        for layer in self.layers:
            layer_mask = mask
            if bias is not None:  # this layer's heads' relative bias, plus the padding mask
                layer_mask = bias[:, : layer.attention.heads] + (mask if mask is not None else 0)
            x, s = layer(x, layer_mask, output_attentions)
            if hidden is not None:
                hidden.append(x)
            if scores is not None:
                scores.append(s)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return EncoderOutput(
            x, pooled, tuple(hidden) if hidden is not None else None, tuple(scores) if scores is not None else None
        )


def additive_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """[B, T] 1/0 mask → additive [B, 1, 1, T] mask; None when nothing is masked (lets SDPA take its
    fastest kernel). The all-ones check is skipped while tracing for export, where the mask stays."""
    if attention_mask is None:
        return None
    if not tracing() and bool(attention_mask.all()):
        return None
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class SequenceClassificationHead(nn.Module):
    """BERT head (dropout → linear on the pooled output) when the spec has a pooler, otherwise the
    ELECTRA/ConvBERT/DistilBERT head on the first token (dropout → dense → the spec's
    ``head_activation`` → dropout → linear)."""

    def __init__(self, spec, num_labels: int):
        super().__init__()
        self.dropout = nn.Dropout(spec.hidden_dropout)
        self.dense = None if spec.pooler else nn.Linear(spec.hidden, spec.hidden)
        self.act = ACTIVATIONS[getattr(spec, "head_activation", "gelu")]  # exported spec dicts omit the default
        self.out = nn.Linear(spec.hidden, num_labels)

    def forward(self, output: EncoderOutput) -> torch.Tensor:
        if self.dense is None:
            return self.out(dropout(output.pooler_output, self.dropout))
        x = dropout(output.last_hidden_state[:, 0], self.dropout)
        return self.out(dropout(self.act(self.dense(x)), self.dropout))


class BertsmithForSequenceClassification(nn.Module):
    """Encoder + classification head; ``num_labels=1`` makes it a regression model."""

    def __init__(self, spec, num_labels: int = 2):
        super().__init__()
        self.num_labels = num_labels
        self.encoder = BertsmithModel(spec)
        self.head = SequenceClassificationHead(spec, num_labels)
        init_weights(self.head, spec.initializer_range)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        """Returns (logits [B, num_labels], EncoderOutput)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, **kwargs)
        return self.head(out), out


class QuestionAnsweringHead(nn.Module):
    """Extractive QA head: one linear map of every token's final hidden state to a start and an end
    logit (BERT's ``qa_outputs``). ``dense`` is None, as in the pooled classification head, so that
    slicing and reordering treat both heads alike."""

    dense = None

    def __init__(self, spec):
        super().__init__()
        self.out = nn.Linear(spec.hidden, 2)

    def forward(self, output: EncoderOutput) -> torch.Tensor:
        return self.out(output.last_hidden_state)


class BertsmithForQuestionAnswering(nn.Module):
    """Encoder + QA head. The logits [B, T, 2] hold the start (``[..., 0]``) and end (``[..., 1]``)
    logit of each token; padding positions are not masked here (post-processing and the losses do)."""

    num_labels = 2

    def __init__(self, spec, num_labels: int = 2):
        super().__init__()
        if num_labels != 2:  # taken so that every task model is built as ``cls(spec, num_labels)``
            raise ValueError(f"a question-answering head has 2 outputs (start, end), not {num_labels}")
        self.encoder = BertsmithModel(spec)
        self.head = QuestionAnsweringHead(spec)
        init_weights(self.head, spec.initializer_range)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        """Returns (logits [B, T, 2], EncoderOutput)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, **kwargs)
        return self.head(out), out


class BertsmithForMaskedLM(nn.Module):
    """Encoder + MLM head: dense h→e, gelu, LayerNorm, decoder e→vocab tied to the token embeddings."""

    def __init__(self, spec):
        super().__init__()
        e = spec.embeddings.size or spec.hidden
        self.encoder = BertsmithModel(spec)
        self.transform = nn.Linear(spec.hidden, e)
        self.norm = nn.LayerNorm(e, eps=spec.layer_norm_eps)
        self.decoder = nn.Linear(e, spec.embeddings.vocab_size)
        init_weights(self, spec.initializer_range)
        self.decoder.weight = self.encoder.embeddings.word.weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        """Returns (logits [B, T, vocab], EncoderOutput)."""
        out = self.encoder(input_ids, attention_mask, token_type_ids, **kwargs)
        return self.decoder(self.norm(F.gelu(self.transform(out.last_hidden_state)))), out


@torch.no_grad()
def init_weights(module: nn.Module, std: float) -> None:
    """BERT initialisation: normal(0, std) weights, zero biases, unit LayerNorms, zero padding row."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, GroupedLinear)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
