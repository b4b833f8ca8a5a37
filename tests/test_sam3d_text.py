"""Text prompts: template, the MiniLM default and a Bio_ClinicalBERT-style local folder."""

import numpy as np
import pytest
import torch

from rtsam.engines.base import Prompt
from rtsam.engines.registry import load_engine
from rtsam.engines.sam3d.text import TextEncoder, format_patient, prompt_text
from rtsam.errors import InputError
from rtsam.volume import Volume

WORDS = ["segment", "osteo", "##radio", "##necrosis", "patient", "male", "female", "gy", "months", "after",
         "radiotherapy", "head", "and", "neck", "brain", "edema", "year", "old", "-", ".", ","] + list("0123456789")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A Bio_ClinicalBERT-shaped folder (BertConfig + vocab tokenizer), built with save_pretrained."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_clinical_bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(str(vocab), do_lower_case=True).save_pretrained(folder)
    return folder


def test_template():
    patient = format_patient(age=64, sex="Male", site="head and neck", dose_gy=70, months_since_rt=18)
    assert patient == "64-year-old male, head and neck, 70 Gy, 18 months after radiotherapy"
    assert prompt_text("Segment osteoradionecrosis.", patient) == (
        "Segment osteoradionecrosis. Patient: 64-year-old male, head and neck, 70 Gy, 18 months after radiotherapy.")
    assert prompt_text("Segment cerebral edema") == "Segment cerebral edema."
    assert format_patient(dose_gy=54.5) == "54.5 Gy"
    with pytest.raises(InputError, match="empty text prompt"):
        prompt_text("  ", None)


def test_default_minilm_encodes_and_caches():
    encoder = TextEncoder()
    assert encoder.path.name == "model" and encoder.dim == 384
    texts = ["Segment osteoradionecrosis.", "Segment cerebral edema.", "Segment osteoradionecrosis."]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384) and torch.equal(vectors[0], vectors[2])
    assert not torch.allclose(vectors[0], vectors[1])
    assert len(encoder._cache) == 2
    assert torch.equal(encoder.encode(texts[:1])[0], vectors[0])


def test_clinical_bert_folder_uses_the_same_loader(tiny_bert):
    encoder = TextEncoder(tiny_bert)
    vectors = encoder.encode([prompt_text("segment osteoradionecrosis", format_patient(age=60, sex="male")),
                              "brain edema"])
    assert encoder.dim == 32 and vectors.shape == (2, 32)
    assert torch.isfinite(vectors).all() and not torch.allclose(vectors[0], vectors[1])


def test_text_prompt_in_the_engine_sizes_the_adapter_from_the_encoder(tiny_bert):
    engine = load_engine("sam3d-tiny", text_encoder=tiny_bert)
    assert engine.config.text_dim == 32
    image = Volume(np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32), (1.5, 1.5, 1.5))
    with torch.no_grad():
        torch.nn.init.normal_(engine.model.prompt_encoder.text_adapter[2].weight)  # make the text token matter
    context = engine.open(image)
    box = np.array([[10.0, 10.0, 10.0], [40.0, 40.0, 40.0]])
    plain = context.predict(Prompt(box_lps=box))
    with_text = context.predict(Prompt(box_lps=box, task="segment brain edema", patient="female"))
    assert context.embeddings_computed == 1
    assert not np.allclose(plain.probability.array, with_text.probability.array)


def test_bad_text_encoder_folder(tmp_path):
    with pytest.raises(InputError, match="config.json missing"):
        TextEncoder(tmp_path)
