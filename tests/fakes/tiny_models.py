"""Tiny, randomly initialised checkpoints of the heads' real classes (ViT, Wav2Vec2, RoBERTa),
saved as a model hub would serve them, so export, loading and inference run on the real code."""

from __future__ import annotations

from pathlib import Path

FACE_LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
VOICE_LABELS = ("neu", "hap", "ang", "sad")
TEXT_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")

CORPUS = [
    "I am so happy with the wonderful progress we made",
    "this is terrible and I feel sad and angry about it",
    "what a surprise, that is great news for the team",
    "the launch failed and we lost our biggest customer",
    "thank you all, I am glad to take your questions",
] * 20


def _labels(names: tuple[str, ...]) -> dict[str, object]:
    return {
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def tiny_vit(path: Path, image_size: int = 32) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        **_labels(FACE_LABELS),
    )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(path)
    return path


def tiny_wav2vec2(path: Path, *, layer_norm: bool = True) -> Path:
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(16, 16, 16, 16, 16, 16, 16),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer" if layer_norm else "group",
        do_stable_layer_norm=layer_norm,
        classifier_proj_size=16,
        **_labels(VOICE_LABELS),
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=layer_norm
    ).save_pretrained(path)
    return path


def tiny_roberta(path: Path) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]
    )
    from tokenizers.processors import RobertaProcessing

    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))  # type: ignore[assignment]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=64,
    )
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        **_labels(TEXT_LABELS),
    )
    RobertaForSequenceClassification(config).save_pretrained(path)
    return path
