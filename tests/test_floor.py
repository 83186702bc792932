"""benchmarks.floor's deterministic parts: the bytes of weights a call reads (tied weights once, the rows
of embedding tables looked up, packed weights that are no parameters) and the floor arithmetic. No
timing is asserted anywhere (the measured bandwidth and GEMM rate are the machine's)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks import floor
from benchmarks.text_generation import kv_cache_bytes


class Tied(nn.Module):
    """An embedding table (10 x 4) whose matrix is also a head's, plus a biased layer (4 -> 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied: one tensor
        self.proj = nn.Linear(4, 3)


def test_weight_bytes_counts_tied_weights_once():
    m = Tied()
    assert floor.weight_bytes(m) == (10 * 4 + 4 * 3 + 3) * 4


def test_weight_bytes_shared_storage_of_two_parameters_once():
    m = Tied()
    m.head.weight = nn.Parameter(m.emb.weight.data)  # another Parameter over the same memory
    assert floor.weight_bytes(m) == (10 * 4 + 4 * 3 + 3) * 4


def test_weight_bytes_partial_rows():
    m = Tied()
    untied = nn.ModuleDict({"emb": nn.Embedding(10, 4), "proj": nn.Linear(4, 3)})
    assert floor.weight_bytes(untied, {"emb.weight": 3}) == (3 * 4 + 4 * 3 + 3) * 4
    assert floor.weight_bytes(untied, {"emb.weight": 99}) == (10 * 4 + 4 * 3 + 3) * 4  # at most the table
    assert floor.weight_bytes(m.half()) == (10 * 4 + 4 * 3 + 3) * 2  # the dtype's bytes
    with pytest.raises(KeyError, match="nope"):
        floor.weight_bytes(untied, {"nope": 1})


def test_weight_bytes_counts_packed_linears():
    from engine.models.optimize import PackedLinear, can_pack
    if not can_pack("cpu", torch.float32):
        pytest.skip("no oneDNN packed linears in this torch build")
    model = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 4, bias=False)).requires_grad_(False)
    want = floor.weight_bytes(model)
    packed = nn.Sequential(PackedLinear(model[0]), PackedLinear(model[1]))
    assert floor.weight_bytes(packed) == want == (8 * 16 + 16 + 16 * 4) * 4


def test_gpt2_bytes_equal_transformers_parameters(gpt2_checkpoint, gpt2_native):
    """Ours and transformers' GPT-2 (LM head tied to the token embeddings in both) hold the same
    bytes, plus our packed copy of the head; a decoding step reads one row of the positions and of the
    embeddings, and the head once."""
    from transformers import GPT2LMHeadModel

    from engine.device import resolve
    from engine.models import gpt2
    ours = gpt2.from_checkpoint(gpt2_checkpoint, resolve("cpu", "exact"))
    theirs = GPT2LMHeadModel.from_pretrained(gpt2_native)
    unique = {p.data_ptr(): p.numel() for p in theirs.parameters()}
    c = ours.config
    head = c.vocab_size * c.n_embd * 4
    assert ours.packed_head is not None
    assert floor.weight_bytes(theirs) == 4 * sum(unique.values())
    assert floor.weight_bytes(ours) == floor.weight_bytes(theirs) + head
    step = floor.weight_bytes(ours, {"wpe.weight": 1, "wte.weight": 1})
    assert step == floor.weight_bytes(theirs) - (c.n_positions - 1) * c.n_embd * 4 + c.n_embd * 4


def test_bert_bytes_per_call():
    from benchmarks.text import bytes_per_call
    from engine.models.bert import Bert, BertConfig
    cfg = BertConfig("bert", vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=20, type_vocab_size=2,
                     id2label={0: "O", 1: "B-X"})
    for head in ("token-classification", "masked-lm"):
        model = Bert(cfg, head)
        total = floor.weight_bytes(model)
        tables = (50 + 20 + 2) * 8 * 4
        got = bytes_per_call(model, 5)
        if head == "masked-lm":  # the tied decoder reads the whole word-embedding table
            assert got == total - tables + (50 + 5 + 2) * 8 * 4
        else:
            assert got == total - tables + (5 + 5 + 2) * 8 * 4


def test_floor_arithmetic():
    assert floor.memory_floor_ms(1e9, 10.0) == pytest.approx(100.0)
    assert floor.flop_floor_ms(2e9, 100.0) == pytest.approx(20.0)
    assert floor.floor_ms(2e9, 100.0, 1e9, 10.0) == (pytest.approx(100.0), "memory")
    assert floor.floor_ms(2e12, 100.0, 1e9, 10.0) == (pytest.approx(20000.0), "compute")
    assert floor.floor_ms(2e9, 100.0) == (pytest.approx(20.0), "compute")


def test_kv_cache_bytes():
    from engine.models.gpt2 import GPT2Config
    c = GPT2Config(vocab_size=10, n_positions=64, n_embd=8, n_layer=3, n_head=2, n_inner=32)
    # keys and values, 3 layers, 4 beams, on average 10 + (5 - 1) / 2 = 12 cached tokens, 8 wide, fp32
    assert kv_cache_bytes(c, beams=4, prompt=10, new=5) == 2 * 3 * 4 * 12 * 8 * 4


def test_bandwidth_array_is_well_above_the_caches():
    l3 = floor.cache_bytes(3)
    assert floor.bandwidth_array_bytes("cpu") >= max(512 * 2 ** 20, 16 * (l3 or 0))
    assert floor.read_bandwidth_gbs("cpu", nbytes=2 ** 20, tries=1) > 0  # runs; the figure is not asserted


def test_bench_help_names_the_models_each_benchmark_compares():
    """`bench --help` lists every task's benchmark with the models it times (it once printed
    "universal segmentation ()" and called the SegFormer bench Mask2Former's)."""
    from benchmarks.cli import benches
    listed = benches()
    assert listed["semantic-segmentation"][1] == "semantic segmentation (SegFormer)"
    assert listed["universal-segmentation"][1] == "universal segmentation (Mask2Former)"
    assert listed["object-detection"][1] == "object detection (DETR)"
    for name, (_, help_text) in listed.items():
        assert "()" not in help_text, name


def test_linear_layers_ms_runs_every_linear_layer_once_a_pass():
    from engine.models.optimize import PackedLinear, can_pack
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4, bias=False))
    if can_pack("cpu", torch.float32):
        model[2] = PackedLinear(model[2], rows=16)
    calls = []
    for m in (model[0], model[2]):
        m.register_forward_hook(lambda mod, args, out: calls.append(tuple(args[0].shape)))
    ms, flops = floor.linear_layers_ms(model, rows=5, repeats=3)
    assert flops == 2 * 5 * (8 * 16 + 16 * 4)
    assert ms > 0
    assert calls == [(5, 8), (5, 16)] * 5  # 2 warm-up passes + 3 timed, each layer once a pass


def test_gemm_rate_is_the_best_measured_so_far(monkeypatch):
    """The floor takes the better of the rates measured when a bench starts and when it prints: a dip
    of a shared machine's GEMM rate must not lower the floor's rate."""
    rates = iter([300.0, 250.0, 400.0])
    monkeypatch.setattr(floor, "_best_rate", {})
    monkeypatch.setattr(floor, "measure_gemm_gflops", lambda dtype_name="float32", device="cpu": next(rates))
    assert floor.gemm_gflops() == 300.0
    assert floor.gemm_gflops() == 300.0  # not measured again
    assert floor.gemm_gflops(again=True) == 300.0  # 250 measured: the better one kept
    assert floor.gemm_gflops(again=True) == 400.0
