"""A model's anatomy: where its attention, MLP and weight matrices are, and how to read them, in one place.

``anatomy_of(model)`` recognises the family from the module structure (names, module types and the shapes
they must have), never from a catalogue id, and returns a frozen ``Anatomy`` of names and numbers only; its
methods take the model as an argument, so one anatomy also serves a structural copy of the same model.

Supported families (a block list whose every block has all of these modules):
    GPT-2: ``attn.c_attn`` (q, k, v fused side by side in one Conv1D), ``attn.c_proj``, ``mlp.c_fc``,
        ``mlp.c_proj``; learned positions ``wpe``.
    BERT: ``attention.self.{query,key,value}``, ``attention.output.dense``, ``intermediate.dense``,
        ``output.dense``; learned positions ``position_embeddings``.
    Llama family (Llama, Mistral, Qwen2, SmolLM2, ...): ``self_attn.{q,k,v,o}_proj``,
        ``mlp.{gate,up,down}_proj``; grouped-query attention when there are fewer key/value heads.

Orientation: every matrix reads as W of shape (out, in), so y = W x (nn.Linear's convention). GPT-2's
Conv1D stores (in, out) and is transposed; its fused c_attn is split into q, k, v. Embeddings are
(vocab or positions, d_model). A tied output layer (lm_head sharing the embedding's weight) appears once.

Kinds, the one vocabulary used across pages, the CLI and tests:
    attn_q, attn_k, attn_v, attn_o, mlp_gate, mlp_up, mlp_down, embed, pos_embed, lm_head, other
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from transformers.pytorch_utils import Conv1D

from explorer.errors import UnsupportedModelError
from explorer.models.catalogue import Quantization

KINDS = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_o",
    "mlp_gate",
    "mlp_up",
    "mlp_down",
    "embed",
    "pos_embed",
    "lm_head",
    "other",
]
ATTENTION_KINDS = ["attn_q", "attn_k", "attn_v", "attn_o"]
MLP_KINDS = ["mlp_gate", "mlp_up", "mlp_down"]
FUSED_QKV = "attn_qkv"  # a layout's label for a module holding q, k and v side by side


@dataclass(frozen=True)
class _Layout:
    """Where a family keeps things, as names relative to one block (or to the token embedding's parent).
    The defaults are what most families share (a causal decoder of Linear layers with one ``mlp`` module and an
    ``lm_head``); each family states only what is its own."""

    family: str
    label: str
    attention: str  # the module whose forward returns (output, attention weights (batch, head, query, key))
    matrices: tuple[tuple[str, str], ...]  # (module, kind); kind FUSED_QKV splits into attn_q, attn_k, attn_v
    # Names a checkpoint read without its model needs (a loaded model says these through
    # get_input_embeddings / get_output_embeddings): the token embedding's own name, and the output layer's
    # full names as the task heads of the family save them.
    token_embed: str
    outputs: tuple[str, ...] = ("lm_head",)
    core: str = ""  # the module holding q, k, v ("": ``attention`` itself); its ``is_causal`` is the mask
    mlp: tuple[str, ...] = ("mlp",)
    matrix_type: type = torch.nn.Linear
    position: str | None = None  # learned position embedding, a sibling of the token embedding (None: rotary)
    causal_default: bool | None = (
        True  # when the core module has no ``is_causal``; None: the config's is_decoder
    )

    def __post_init__(self):
        if not self.core:
            object.__setattr__(self, "core", self.attention)  # frozen: set once, here


def _children(parent: str, **kinds: str) -> tuple[tuple[str, str], ...]:
    """(module, kind) rows of ``parent``'s child modules, in the order given:
    ``_children("mlp", up_proj="mlp_up")`` is ``(("mlp.up_proj", "mlp_up"),)``."""
    return tuple((f"{parent}.{child}", kind) for child, kind in kinds.items())


_LAYOUTS = (
    _Layout(
        family="gpt2",
        label="GPT-2",
        attention="attn",
        matrices=_children("attn", c_attn=FUSED_QKV, c_proj="attn_o")
        + _children("mlp", c_fc="mlp_up", c_proj="mlp_down"),
        token_embed="wte",
        matrix_type=Conv1D,
        position="wpe",
    ),
    _Layout(
        family="bert",
        label="BERT",
        attention="attention",
        matrices=_children("attention.self", query="attn_q", key="attn_k", value="attn_v")
        + _children("attention.output", dense="attn_o")
        + _children("intermediate", dense="mlp_up")
        + _children("output", dense="mlp_down"),
        core="attention.self",
        mlp=("intermediate", "output"),
        token_embed="word_embeddings",
        outputs=("cls.predictions.decoder",),
        position="position_embeddings",
        causal_default=None,
    ),
    _Layout(
        family="llama",
        label="Llama family (Llama, Mistral, Qwen2, SmolLM2, ...)",
        attention="self_attn",
        matrices=_children("self_attn", q_proj="attn_q", k_proj="attn_k", v_proj="attn_v", o_proj="attn_o")
        + _children("mlp", gate_proj="mlp_gate", up_proj="mlp_up", down_proj="mlp_down"),
        token_embed="embed_tokens",
    ),
)
SUPPORTED = ", ".join(layout.label for layout in _LAYOUTS)
_FUSED_PARTS = ("attn_q", "attn_k", "attn_v")


@dataclass(frozen=True)
class MatrixSlot:
    """Where one 2-D weight lives and how to read it as (out, in).

    name: unique, the module name (``model.layers.3.self_attn.q_proj``), or ``<module>:q`` / ``:k`` / ``:v``
        for a part of GPT-2's fused c_attn. module: the owning module's name. layer: block index or None
        (embeddings, output layer, pooler). kind: one of KINDS. transposed: the module stores (in, out)
        (Conv1D). part, n_parts: this slot is rows part*out/n_parts .. (part+1)*out/n_parts of the module's
        (out, in) weight (a fused module), else 0 and 1.
    """

    name: str
    module: str
    layer: int | None
    kind: str
    transposed: bool = False
    part: int = 0
    n_parts: int = 1

    @property
    def fused(self) -> bool:
        return self.n_parts > 1

    def weight(self, model: torch.nn.Module) -> torch.Tensor:
        """(out, in), a view of the parameter (no copy): never modify it in place."""
        return self.weight_of(model.get_submodule(self.module))

    def bias(self, model: torch.nn.Module) -> torch.Tensor | None:
        """(out,), a view, or None."""
        return self.bias_of(model.get_submodule(self.module))

    def weight_of(self, module: torch.nn.Module) -> torch.Tensor:
        """``weight`` given the owning module itself (saves a lookup per matrix when reading them all)."""
        W = module.weight.detach()
        W = W.T if self.transposed else W
        return W.chunk(self.n_parts, dim=0)[self.part] if self.fused else W

    def bias_of(self, module: torch.nn.Module) -> torch.Tensor | None:
        """``bias`` given the owning module itself."""
        bias = getattr(module, "bias", None)
        if not isinstance(bias, torch.Tensor):
            return None
        bias = bias.detach()
        return bias.chunk(self.n_parts)[self.part] if self.fused else bias


@dataclass(frozen=True)
class BlockAnatomy:
    """One transformer block. block: its module name. attention: the module whose forward returns (output,
    attention weights); core: the module holding q, k, v (same as attention except BERT's ``attention.self``);
    mlp: the modules making up the MLP (BERT splits it into ``intermediate`` and ``output``)."""

    index: int
    block: str
    attention: str
    core: str
    mlp: tuple[str, ...]


@dataclass(frozen=True)
class HeadWeights:
    """Per-head attention weights of one layer, in the row-vector convention of Elhage et al. (2021):
    q = x @ W_Q[h], k = x @ W_K[h], v = x @ W_V[h], output = z @ W_O[h].

    W_Q: (head, d_model, d_head); W_K, W_V: (head, d_model, d_head), already expanded for grouped-query
    attention (query head h uses key/value head h // (n_heads / n_kv_heads), so heads of a group share
    the same W_K, W_V); W_O: (head, d_head, d_model). On CPU, float64 unless asked otherwise (copies, safe
    to modify).
    """

    layer: int
    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor
    n_kv_heads: int

    def kv_head(self, head: int) -> int:
        return head // (self.W_Q.shape[0] // self.n_kv_heads)


@dataclass(frozen=True)
class Anatomy:
    """What the explorer needs to know about a model's architecture (names and numbers; no tensors).

    family: "gpt2", "bert" or "llama"; family_label: its name for people. model_type: the config's
    model_type (e.g. "mistral" in the llama family). causal: each token attends to earlier tokens only (the attention modules' own mask setting).
    embed, pos_embed: module names of the token and learned-position embeddings (pos_embed None with
    rotary positions). lm_head: the output layer's module name, None without one (encoders).
    tied_output: lm_head when its weight is the embedding's (then it is not a separate matrix), else None.
    blocks: one BlockAnatomy per layer. matrices: every 2-D weight of a Linear, Conv1D or Embedding, in
    module order, tied copies once. quantization: how the shipped weights were stored before the loader
    de-quantized them (None: floats as trained, or unknown for models from outside the catalogue).
    """

    family: str
    family_label: str
    model_type: str
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    causal: bool
    embed: str
    pos_embed: str | None
    lm_head: str | None
    tied_output: str | None
    blocks: tuple[BlockAnatomy, ...]
    matrices: tuple[MatrixSlot, ...]
    quantization: Quantization | None = None

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def causal_lm(self) -> bool:
        """A causal language model: causal attention and an output layer, so next-token losses exist (a
        decoder saved without its head has causal attention but no logits)."""
        return self.causal and self.lm_head is not None

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    @property
    def grouped(self) -> bool:
        return self.n_kv_heads < self.n_heads

    def kv_head(self, head: int) -> int:
        """The key/value head that query head ``head`` reads (heads of one group are adjacent)."""
        if not 0 <= head < self.n_heads:
            raise ValueError(f"Head {head} not found; this model has heads 0..{self.n_heads - 1}.")
        return head // self.group_size

    def require_heads(self, n_heads: int, n_kv_heads: int | None = None) -> Anatomy:
        """This anatomy, after checking that a caller's head counts are the model's (ValueError if not)."""
        n_kv_heads = n_kv_heads or n_heads
        if n_heads % n_kv_heads:
            raise ValueError(f"{n_heads} query heads cannot share {n_kv_heads} key/value heads evenly.")
        if (n_heads, n_kv_heads) != (self.n_heads, self.n_kv_heads):
            raise ValueError(
                f"This model has {self.n_heads} query heads and {self.n_kv_heads} key/value heads, "
                f"not {n_heads} and {n_kv_heads}."
            )
        return self

    def layer_matrices(self, layer: int) -> dict[str, MatrixSlot]:
        """kind -> slot of block ``layer``'s attention and MLP matrices."""
        self._check_layer(layer)
        return {slot.kind: slot for slot in self.matrices if slot.layer == layer}

    def attention_modules(self, model: torch.nn.Module) -> dict[int, torch.nn.Module]:
        """layer -> the module whose forward returns (output, attention weights (batch, head, query, key))."""
        return {block.index: model.get_submodule(block.attention) for block in self.blocks}

    def head_weights(
        self, model: torch.nn.Module, layer: int, dtype: torch.dtype = torch.float64
    ) -> HeadWeights:
        """Layer ``layer``'s q/k/v/o projections split into heads (see HeadWeights). Biases are ignored."""
        slots = self.layer_matrices(layer)
        Wq, Wk, Wv, Wo = (slots[kind].weight(model).to("cpu", dtype) for kind in ATTENTION_KINDS)  # (out, in)
        H, G, d, dh = self.n_heads, self.n_kv_heads, self.d_model, self.d_head
        # (out, in) -> (head, d_model, d_head): rows h*d_head..(h+1)*d_head of W produce head h's features.
        W_Q = Wq.reshape(H, dh, d).transpose(1, 2).contiguous()
        W_K = Wk.reshape(G, dh, d).transpose(1, 2).repeat_interleave(self.group_size, dim=0).contiguous()
        W_V = Wv.reshape(G, dh, d).transpose(1, 2).repeat_interleave(self.group_size, dim=0).contiguous()
        # o_proj: (d_model, n_heads * d_head) -> (head, d_head, d_model)
        W_O = Wo.reshape(d, H, dh).permute(1, 2, 0).contiguous()
        return HeadWeights(layer, W_Q, W_K, W_V, W_O, G)

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"Layer {layer} not found; this model has layers 0..{self.n_layers - 1}.")


# ------------------------------------------------------------------------------------------- detection


def _find_blocks(modules: dict[str, torch.nn.Module]) -> tuple[_Layout, str, int] | None:
    """(layout, block list name, number of blocks) of the first ModuleList whose every block has all of a
    layout's matrices, as modules of the layout's type, and its attention module."""
    lists = {
        prefix: len(module)
        for prefix, module in modules.items()
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0
    }
    return _match_blocks(
        lists, lambda name, layout: isinstance(modules.get(name), layout.matrix_type), modules.__contains__
    )


def _match_blocks(
    block_lists: dict[str, int],
    is_matrix: Callable[[str, _Layout], bool],
    is_module: Callable[[str], bool],
) -> tuple[_Layout, str, int] | None:
    """The rule behind ``_find_blocks``, on names: the first block list (name -> number of blocks) whose every
    block i has each of a layout's matrices (``is_matrix(name, layout)``) and its attention module
    (``is_module(name)``). Shared by a loaded model and a checkpoint read without its model."""
    for prefix, n_blocks in block_lists.items():
        for layout in _LAYOUTS:
            if all(
                is_matrix(f"{prefix}.{i}.{rel}", layout) and is_module(f"{prefix}.{i}.{layout.attention}")
                for i in range(n_blocks)
                for rel, _kind in layout.matrices
            ):
                return layout, prefix, n_blocks
    return None


def _block_kinds(layout: _Layout, prefix: str, n_blocks: int) -> dict[str, tuple[int, str]]:
    """Module name -> (layer, kind) of every matrix the layout names in blocks 0 .. n_blocks - 1."""
    return {f"{prefix}.{i}.{rel}": (i, kind) for i in range(n_blocks) for rel, kind in layout.matrices}


def _config_int(config, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def _unsupported(model: torch.nn.Module, why: str) -> UnsupportedModelError:
    config = getattr(model, "config", None)
    what = f"{type(model).__name__} (model_type '{getattr(config, 'model_type', '?')}')"
    return UnsupportedModelError(
        f"{what}: {why} The explorer supports these architectures: {SUPPORTED}. "
        "Choose a catalogue model or a saved model of one of these families."
    )


def anatomy_of(model: torch.nn.Module, quantization: Quantization | None = None) -> Anatomy:
    """The anatomy of ``model`` (see the module docstring); ``quantization`` is the loader's provenance.

    Raises UnsupportedModelError, naming the supported families, for any other architecture or for a
    model whose weight shapes do not match its head counts.
    """
    modules = dict(model.named_modules())
    found = _find_blocks(modules)
    if found is None:
        raise _unsupported(model, "its transformer blocks are not laid out like any supported family.")
    layout, prefix, n_blocks = found
    config = model.config
    name_of = {id(module): name for name, module in modules.items()}
    embedding = model.get_input_embeddings()
    embed = name_of.get(id(embedding))
    if embed is None or not isinstance(embedding, torch.nn.Embedding):
        raise _unsupported(model, "its token embedding is not an nn.Embedding.")
    output = model.get_output_embeddings()
    lm_head = name_of.get(id(output)) if output is not None else None
    tied = output is not None and getattr(output, "weight", None) is embedding.weight
    parent = embed.rpartition(".")[0]
    position = f"{parent}.{layout.position}" if parent and layout.position else layout.position
    pos_embed = position if position in modules else None

    blocks = tuple(
        BlockAnatomy(
            index=i,
            block=f"{prefix}.{i}",
            attention=f"{prefix}.{i}.{layout.attention}",
            core=f"{prefix}.{i}.{layout.core}",
            mlp=tuple(f"{prefix}.{i}.{rel}" for rel in layout.mlp),
        )
        for i in range(n_blocks)
    )
    in_block = _block_kinds(layout, prefix, n_blocks)
    named_kinds = {
        name: kind
        for name, kind in ((embed, "embed"), (pos_embed, "pos_embed"), (lm_head, "lm_head"))
        if name
    }
    matrices = _matrix_slots(modules, prefix, in_block, named_kinds)

    n_heads = _config_int(config, "num_attention_heads", "n_head", "num_heads")
    if not n_heads:
        raise _unsupported(model, "its config gives no number of attention heads.")
    n_kv_heads = _config_int(config, "num_key_value_heads") or n_heads
    slots = {(s.layer, s.kind): s for s in matrices if s.layer is not None}
    causal = getattr(modules[blocks[0].core], "is_causal", None)
    if causal is None:
        causal = layout.causal_default
    if causal is None:
        causal = bool(getattr(config, "is_decoder", False))
    q_slot = slots[(0, "attn_q")]
    q_out, d_model = q_slot.weight_of(modules[q_slot.module]).shape
    d_head = q_out // n_heads
    anatomy = Anatomy(
        family=layout.family,
        family_label=layout.label,
        model_type=str(getattr(config, "model_type", "")),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_model=d_model,
        d_head=d_head,
        causal=bool(causal),
        embed=embed,
        pos_embed=pos_embed,
        lm_head=lm_head,
        tied_output=lm_head if tied else None,
        blocks=blocks,
        matrices=matrices,
        quantization=quantization,
    )
    _check_head_shapes(model, modules, anatomy, slots)
    return anatomy


def matrix_slots(model: torch.nn.Module) -> tuple[MatrixSlot, ...]:
    """Every 2-D weight of a Linear, Conv1D or Embedding of ``model``, in module order, tied copies once: the
    anatomy's matrices for a supported architecture; for any other module (a hand-built test model, say)
    the same enumeration with kind "other" and no layer, since its weights are matrices all the same."""
    try:
        return anatomy_of(model).matrices
    except UnsupportedModelError:
        return _matrix_slots(dict(model.named_modules()), None, {}, {})


def _matrix_slots(
    modules: dict[str, torch.nn.Module], prefix: str | None, in_block: dict, named_kinds: dict
) -> tuple[MatrixSlot, ...]:
    """The enumeration behind ``Anatomy.matrices``: ``in_block`` maps a block matrix's module name to
    (layer, kind), ``named_kinds`` the embeddings and output layer to their kinds; anything else is "other"."""
    matrices: list[MatrixSlot] = []
    seen: set[int] = set()
    for name, module in modules.items():
        weight = getattr(module, "weight", None)
        if not isinstance(module, (torch.nn.Linear, Conv1D, torch.nn.Embedding)):
            continue
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or weight.data_ptr() in seen:
            continue
        seen.add(weight.data_ptr())  # a tied output layer comes after its embedding and is skipped
        transposed = isinstance(module, Conv1D)  # Conv1D stores (in, out)
        matrices.extend(_slots_of(name, transposed, prefix, in_block, named_kinds))
    return tuple(matrices)


def _slots_of(
    name: str, transposed: bool, prefix: str | None, in_block: dict, named_kinds: dict
) -> list[MatrixSlot]:
    """The slot(s) of module ``name``'s weight: (layer, kind) from ``in_block`` or ``named_kinds`` (else the
    block it sits in, kind "other"); a fused q/k/v module gives three. The one name -> (layer, kind) rule of a
    loaded model and of a checkpoint."""
    layer, kind = in_block.get(name, (_block_index(name, prefix), named_kinds.get(name, "other")))
    if kind == FUSED_QKV:
        return [
            MatrixSlot(f"{name}:{part_kind[-1]}", name, layer, part_kind, transposed, part, 3)
            for part, part_kind in enumerate(_FUSED_PARTS)
        ]
    return [MatrixSlot(name, name, layer, kind, transposed)]


def _block_index(name: str, prefix: str | None) -> int | None:
    """Block index of a module inside the block list (a matrix no layout names), else None."""
    if prefix is None or not name.startswith(prefix + "."):
        return None
    head = name[len(prefix) + 1 :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _check_head_shapes(model: torch.nn.Module, modules: dict, anatomy: Anatomy, slots: dict) -> None:
    """Every block's q/k/v/o shapes must match the head counts, or the per-head slices would be wrong."""
    H, G, d, dh = anatomy.n_heads, anatomy.n_kv_heads, anatomy.d_model, anatomy.d_head
    if H % G:
        raise _unsupported(model, f"{H} query heads cannot share {G} key/value heads evenly.")
    expected = {"attn_q": (H * dh, d), "attn_k": (G * dh, d), "attn_v": (G * dh, d), "attn_o": (d, H * dh)}
    for layer in range(anatomy.n_layers):
        for kind, shape in expected.items():
            slot = slots[(layer, kind)]
            got = tuple(slot.weight_of(modules[slot.module]).shape)
            if got != shape:
                raise _unsupported(
                    model,
                    f"layer {layer}'s {kind} has shape {got}, not {shape} for {H} heads "
                    f"({G} key/value heads) of width {dh}.",
                )


# ------------------------------------------------------------------------------------------- checkpoints


def checkpoint_slots(names: Iterable[str], tied_output: bool) -> tuple[MatrixSlot, ...]:
    """The matrices of a checkpoint read without building its model, as ``matrix_slots`` finds them in the
    model loaded from it: same names, layers, kinds, orientation and order.

    ``names``: the module names of the checkpoint's 2-D float ``*.weight`` tensors (the key minus ".weight"),
    in any order. ``tied_output``: the config ties the output layer to the token embedding, so a saved copy of
    it is skipped (the loaded model's lm_head is the embedding, listed once).

    The rules are the loaded model's (``_match_blocks``, ``_block_kinds``, ``_slots_of``); what a module tree
    says by type is read from names here: the token embedding and output layer by the layout's names, a
    Conv1D by being a GPT-2 block's matrix (every 2-D weight of a GPT-2 block is a Conv1D). The order is the
    module order of the supported families: the token embedding and its siblings (embedding first, positions
    second), the blocks (each in the layout's order), then the rest (output layer last). Without a supported
    layout every matrix is kind "other", no layer, in name order (digits compared as numbers).
    """
    names = set(names)
    found = _match_blocks(
        _block_lists(names), lambda name, _layout: name in names, _module_names(names).__contains__
    )
    layout = found[0] if found else None
    embed = None
    if layout is not None:
        _layout, prefix, n_blocks = found
        in_blocks = {n for n in names if n.startswith(prefix + ".")}
        embed = next(
            (
                n
                for n in sorted(names - in_blocks, key=_natural)
                if n.rpartition(".")[2] == layout.token_embed
            ),
            None,
        )
    if layout is None or embed is None:
        return tuple(MatrixSlot(n, n, None, "other") for n in sorted(names, key=_natural))

    parent = embed.rpartition(".")[0]
    position = f"{parent}.{layout.position}" if parent and layout.position else layout.position
    pos_embed = position if position in names else None
    output = next((n for n in layout.outputs if n in names), None)
    if output is not None and tied_output:
        names.discard(output)
        output = None
    named_kinds = {
        name: kind for name, kind in ((embed, "embed"), (pos_embed, "pos_embed"), (output, "lm_head")) if name
    }
    in_block = _block_kinds(layout, prefix, n_blocks)
    rank = {rel: i for i, (rel, _kind) in enumerate(layout.matrices)}

    def order(name: str) -> tuple:
        if name in in_blocks:
            layer = _block_index(name, prefix)
            rel = name[len(f"{prefix}.{layer}.") :] if layer is not None else name
            return (1, layer if layer is not None else n_blocks, rank.get(rel, len(rank)), _natural(name))
        if name.rpartition(".")[0] == parent:
            return (0, {embed: 0, pos_embed: 1}.get(name, 2), 0, _natural(name))
        return (2, int(name == output), 0, _natural(name))

    conv1d = layout.matrix_type is Conv1D
    slots: list[MatrixSlot] = []
    for name in sorted(names, key=order):
        slots.extend(_slots_of(name, conv1d and name in in_blocks, prefix, in_block, named_kinds))
    return tuple(slots)


def _natural(name: str) -> tuple:
    """Sort key comparing the digit runs of a name as numbers (``layers.10`` after ``layers.9``)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _block_lists(names: Iterable[str]) -> dict[str, int]:
    """Candidate block lists of dotted module names: every prefix followed by an integer segment, with the
    number of blocks (largest index + 1), in order of first appearance by natural name order."""
    lists: dict[str, int] = {}
    for name in sorted(names, key=_natural):
        parts = name.split(".")
        for k, part in enumerate(parts[:-1]):
            if part.isdigit() and k > 0:
                prefix = ".".join(parts[:k])
                lists[prefix] = max(lists.get(prefix, 0), int(part) + 1)
    return lists


def _module_names(names: Iterable[str]) -> set[str]:
    """Every module a set of matrix module names implies: the names and each of their dotted prefixes."""
    out: set[str] = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[: k + 1]) for k in range(len(parts)))
    return out
