from agents.offline.classifier import IntentClassifier, evaluate, load_examples


def test_the_shipped_examples_cover_every_intent_evenly() -> None:
    texts, labels = load_examples()
    assert len(texts) == len(set(texts)) == 300
    assert {labels.count(label) for label in set(labels)} == {50}


def test_held_out_accuracy_is_far_above_chance() -> None:
    result = evaluate(seed=7)
    assert result.test_size == 75 and result.train_size == 225
    # Six intents: chance is 17%. The figure itself is reported by `podium models eval-classifier`.
    assert result.accuracy >= 0.6


def test_predictions_name_an_intent_with_a_confidence() -> None:
    model = IntentClassifier.trained()
    prediction = model.predict("please close my account and stop billing")
    assert prediction.intent in model.labels and 0 < prediction.confidence <= 1
    assert model.predict("Please cancel my subscription at the end of the month").intent == "cancellation"
