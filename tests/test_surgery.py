"""Model surgery on transformers models: coverage, exactness, padding mask, report, warnings."""

import copy
import warnings

import pytest
import torch
from torch import nn

from pmexp.dropout import PackedDropout, PMDropSurgeryWarning, apply

transformers = pytest.importorskip("transformers")

SMALL = dict(num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, attn_implementation="eager")


def tiny_bert(**kw):
    cfg = transformers.BertConfig(
        vocab_size=99, hidden_size=32, max_position_embeddings=64, num_labels=2, **{**SMALL, **kw}
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg)


def batch(seq=16, pad_from=10):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (3, seq), generator=g)
    mask = torch.ones(3, seq, dtype=torch.long)
    mask[0, pad_from:] = 0
    return dict(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1]))


def loss_and_grads(model, inputs, seed=5):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)
    loss = model(**inputs).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_packed_exact_bert_identical_to_stock():
    stock = tiny_bert()
    model = copy.deepcopy(stock)
    report = apply(model, "packed_exact")
    assert report.attention_covered and report.attention_implementation == "pmexp_packed_exact"
    assert report.replaced == 2 * 3 + 2  # per layer: attention .p holder + 2 hidden; embeddings; classifier
    assert all(isinstance(m, PackedDropout) for m in model.modules() if isinstance(m, nn.Dropout))
    assert all(m.p == 0.1 for m in model.modules() if isinstance(m, nn.Dropout))
    loss_ref, grads_ref = loss_and_grads(stock, batch())
    loss, grads = loss_and_grads(model, batch())
    assert torch.equal(loss, loss_ref)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        assert torch.equal(grads[name], grads_ref[name]), name


@pytest.mark.parametrize("variant", ["packed", "seeded", "packed_exact"])
def test_padding_mask_is_honoured(variant):
    model = tiny_bert()
    apply(model, variant)
    model.eval()
    a, b = batch(), batch()
    b["input_ids"][0, 10:] = 7  # change only padded tokens
    with torch.no_grad():
        la, lb = model(**a).logits, model(**b).logits
    assert torch.equal(la, lb)


def test_attention_dropout_goes_through_the_variant():
    """Attention-only surgery must change what is kept for backward (noise tensors -> bits, no dropped copy)."""
    from pmexp.masks import saved_tensor_bytes

    model = tiny_bert(hidden_dropout_prob=0.0)
    inputs = batch()
    inputs.pop("labels")
    before = saved_tensor_bytes(lambda: model(**inputs).logits)
    report = apply(model, "packed_exact", targets=("attention",))
    assert report.replaced == 0 and report.attention_covered
    after = saved_tensor_bytes(lambda: model(**inputs).logits)
    probs = 3 * 4 * 16 * 16  # batch x heads x seq x seq, per layer
    assert after["saved_mask_bytes"] - before["saved_mask_bytes"] == 2 * probs // 8
    # per layer: torch's float32 noise (4 bytes a probability) and matmul's copy of the dropped
    # probabilities (4 more: pmexp.dropout.attention_matmul rebuilds it in backward instead)
    assert before["saved_activation_bytes"] - after["saved_activation_bytes"] == 2 * probs * (4 + 4)


def test_hidden_only_leaves_attention_stock():
    model = tiny_bert()
    report = apply(model, "packed", targets=("hidden",))
    assert report.replaced > 0 and not report.attention_covered
    assert model.config._attn_implementation == "eager"


def build_llama(attn_implementation="eager"):
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, attention_dropout=0.1, attn_implementation=attn_implementation))


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_sdpa_math_fallback_is_eager_attention_with_the_variant(name):
    """SDPA's dropout runs in its math path on CPU (a mask per call): the sdpa-routed model must be
    bit-identical to eager attention with the same variant, padding (BERT) and causality (GPT-2,
    Llama with grouped key/value heads; their SDPA mask arrives as None) honoured."""
    make = {"bert": tiny_bert, "gpt2": build_gpt2, "llama": build_llama}[name]
    inputs = batch() if name == "bert" else model_inputs("gpt2")
    eager, sdpa = make(), make(attn_implementation="sdpa")
    apply(eager, "packed_exact")
    report = apply(sdpa, "packed_exact")
    assert report.attention_covered and report.attention_implementation == "pmexp_sdpa_packed_exact"
    loss_ref, grads_ref = loss_and_grads(eager, inputs)
    loss, grads = loss_and_grads(sdpa, inputs)
    assert torch.equal(loss, loss_ref)
    for n in grads_ref:
        assert torch.equal(grads[n], grads_ref[n]), n


def test_sdpa_fused_kernel_calls_stay_with_sdpa(monkeypatch):
    """Where SDPA picks a fused kernel (no mask kept) the call goes to SDPA unchanged: the routed model
    equals stock SDPA with only its hidden dropout replaced."""
    from torch.nn.attention import SDPBackend

    stock, routed = tiny_bert(attn_implementation="sdpa"), tiny_bert(attn_implementation="sdpa")
    apply(stock, "packed_exact", targets=("hidden",))
    apply(routed, "packed_exact")
    monkeypatch.setattr(torch, "_fused_sdp_choice", lambda *a, **k: SDPBackend.EFFICIENT_ATTENTION.value)
    loss_ref, grads_ref = loss_and_grads(stock, batch())
    loss, grads = loss_and_grads(routed, batch())
    assert torch.equal(loss, loss_ref)
    for n in grads_ref:
        assert torch.equal(grads[n], grads_ref[n]), n


def test_flash_attention_2_reported_not_covered():
    model = tiny_bert()
    model.config._attn_implementation = "flash_attention_2"  # not installed here: only the name is read
    report = apply(model, "packed")
    assert not report.attention_covered and "flash_attention_2" in report.attention_reason
    assert report.replaced > 0


def test_standard_restores_stock_sdpa():
    model = tiny_bert(attn_implementation="sdpa")
    apply(model, "seeded")
    report = apply(model, "standard")
    assert model.config._attn_implementation == "sdpa" and not report.attention_covered


def test_standard_restores_eager():
    model = tiny_bert()
    apply(model, "packed")
    report = apply(model, "standard")
    assert model.config._attn_implementation == "eager" and not report.attention_covered
    assert all(m.variant == "standard" for m in model.modules() if isinstance(m, PackedDropout))


def build(name):
    t = transformers
    torch.manual_seed(0)
    if name == "roberta":
        return t.RobertaForSequenceClassification(
            t.RobertaConfig(vocab_size=99, hidden_size=32, max_position_embeddings=70, **SMALL)
        )
    if name == "distilbert":
        return t.DistilBertForSequenceClassification(
            t.DistilBertConfig(
                vocab_size=99,
                dim=32,
                n_layers=2,
                n_heads=4,
                hidden_dim=64,
                attn_implementation="eager",
                attention_dropout=0.1,
            )
        )
    if name == "gpt2":
        return build_gpt2()
    if name == "vit":
        return t.ViTForImageClassification(
            t.ViTConfig(
                image_size=16,
                patch_size=8,
                hidden_size=32,
                hidden_dropout_prob=0.1,
                attention_probs_dropout_prob=0.1,
                **SMALL,
            )
        )
    raise KeyError(name)


def build_gpt2(attn_implementation="eager"):
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64, attn_implementation=attn_implementation))


def model_inputs(name):
    g = torch.Generator().manual_seed(2)
    if name == "vit":
        return dict(pixel_values=torch.randn(2, 3, 16, 16, generator=g), labels=torch.tensor([0, 1]))
    ids = torch.randint(5, 99, (2, 12), generator=g)
    if name == "gpt2":
        return dict(input_ids=ids, labels=ids)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("name", ["roberta", "distilbert", "gpt2", "vit"])
def test_other_families_covered_and_exact(name):
    stock = build(name)
    model = copy.deepcopy(stock)
    report = apply(model, "packed_exact")
    assert report.attention_covered, report.attention_reason
    assert report.replaced > 0
    loss_ref, grads_ref = loss_and_grads(stock, model_inputs(name))
    loss, grads = loss_and_grads(model, model_inputs(name))
    assert torch.equal(loss, loss_ref)
    for n in grads_ref:
        assert torch.equal(grads[n], grads_ref[n]), n


def test_longformer_attention_said_plainly_not_covered():
    cfg = transformers.LongformerConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        attention_window=4,
        max_position_embeddings=70,
    )
    report = apply(transformers.LongformerModel(cfg), "packed")
    assert not report.attention_covered and "F.dropout" in report.attention_reason


def test_warns_when_nothing_matched_and_rejects_wrappers():
    with pytest.warns(PMDropSurgeryWarning, match="matched nothing"):
        apply(nn.Sequential(nn.Linear(2, 2)), "packed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply(nn.Sequential(nn.Linear(2, 2)), "standard")  # the baseline changes nothing, on purpose
    with pytest.raises(TypeError, match="model.module"):
        apply(nn.DataParallel(nn.Sequential(nn.Dropout())), "packed")
    with pytest.raises(ValueError, match="targets"):
        apply(nn.Sequential(nn.Dropout()), "packed", targets=("mlp",))


def test_shared_dropout_instance_replaced_everywhere():
    drop = nn.Dropout(0.2)
    model = nn.Sequential(nn.Linear(3, 3), drop, nn.Linear(3, 3), drop)
    report = apply(model, "seeded")
    assert report.replaced == 2 and model[1] is model[3] and isinstance(model[1], PackedDropout)
    assert model[1].p == 0.2


@pytest.mark.parametrize("name", ["bert", "gpt2", "roberta", "distilbert", "vit", "llama"])
def test_eager_attention_routed_without_a_torch_function_mode(monkeypatch, name):
    """In eager mode the attention function runs a rebound copy of the model's own eager attention (no
    per-op hook): the mode must not be entered, and the result stays bit-identical to stock."""
    from pmexp.dropout import surgery

    class Forbidden:
        def __init__(self, *args):
            raise AssertionError("the TorchFunctionMode was used in eager mode")

    stock = {"llama": build_llama, "bert": tiny_bert}.get(name, lambda: build(name))()
    model = copy.deepcopy(stock)
    apply(model, "packed_exact")
    monkeypatch.setattr(surgery, "_RouteDropout", Forbidden)
    inputs = batch() if name == "bert" else model_inputs("gpt2" if name == "llama" else name)
    loss_ref, grads_ref = loss_and_grads(stock, inputs)
    loss, grads = loss_and_grads(model, inputs)
    assert torch.equal(loss, loss_ref)
    for n in grads_ref:
        assert torch.equal(grads[n], grads_ref[n]), n


def test_rebinding_refuses_a_function_that_reaches_dropout_otherwise():
    from pmexp.dropout.surgery import _dropout_globals

    def through_torch(x):
        return torch.nn.functional.dropout(x, 0.1)

    def through_nn(x):
        return nn.functional.dropout(x, 0.1)

    assert _dropout_globals(through_torch) is None  # `torch.nn.functional`: the TorchFunctionMode stays
    assert _dropout_globals(through_nn) == ["nn"]


@pytest.mark.parametrize("variant", ["packed", "seeded", "packed_exact", "standard"])
def test_residual_fusion_same_numbers(variant):
    """BERT's output blocks fused (packed/seeded) or left alone (others): loss and gradients equal the
    unfused surgery's under one seed; switching to another variant gives the blocks back."""
    inputs = batch()
    results = []
    for fuse in (True, False):
        model = tiny_bert()
        report = apply(model, variant, fuse_residual=fuse)
        fused = variant in ("packed", "seeded") and fuse
        assert len(report.fused_residual) == (4 if fused else 0)  # 2 layers x (attention output, FFN output)
        results.append(loss_and_grads(copy.deepcopy(model), inputs))
    assert torch.equal(results[0][0], results[1][0])
    for n in results[0][1]:
        assert torch.equal(results[0][1][n], results[1][1][n]), n


def test_residual_fusion_undone_by_another_variant():
    model = tiny_bert()
    apply(model, "packed")
    fused_class = type(model.bert.encoder.layer[0].output)
    assert fused_class.__name__ == "BertOutput" and fused_class._pmexp_unfused is not None
    apply(model, "standard")
    assert type(model.bert.encoder.layer[0].output) is transformers.models.bert.modeling_bert.BertOutput
