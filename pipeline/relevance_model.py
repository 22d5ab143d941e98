"""Train the learned relevance model from the database: on demand, or when it is due.

    examples = editors' decisions (included/shortlisted = 1, excluded = 0)
               + the shipped labelled set (unless `shipped=False`)
    result   = triage.model.train(examples, rules)   (too few labels: no model, the rules stay)
    version  = store the model as current (relevance_models)
    [rescore = re-apply rules + model to stored items; editors' statuses stay]

`retrain_if_due` trains (and rescores) when an issue was finalised since the current model was
trained, or when `[triage] retrain_after` editors' decisions have accumulated since; the draft
flow runs it after drafting. `digest triage train` calls `train_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import Settings
from ..store.db import open_db
from ..store.models import current_model, decisions_since
from ..triage.model import TrainResult, format_training, store_result, train, training_examples
from ..triage.rules import load_rules
from ..triage.run import rescore


@dataclass(frozen=True, slots=True)
class Training:
    """What one training did."""

    result: TrainResult
    #: The stored model's version, or None when no model was made.
    version: int | None
    #: Why it ran ("asked", "issue finalised", "N decisions").
    why: str = "asked"
    #: The rescore's counts when it rescored, else None.
    rescored: dict[str, Any] | None = None

    def summary(self) -> str:
        text = format_training(self.result, self.version)
        if self.rescored is not None:
            text += (f"\nrescored {self.rescored['scored']} items: "
                     f"{self.rescored['moved_in']} moved in to candidate, "
                     f"{self.rescored['moved_out']} moved out to filtered")
        return text

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {"version": self.version, "why": self.why, "relevant": r.relevant,
                "not_relevant": r.not_relevant, "from_editors": r.from_editors,
                "cv_precision": r.cv_precision, "cv_recall": r.cv_recall,
                "refused": r.refused, "rescored": self.rescored}


def train_model(settings: Settings, *, shipped: bool = True, why: str = "asked",
                then_rescore: bool = False) -> Training:
    """Train on the database's decisions (and the shipped set), store the model as current."""
    rules = load_rules(settings)
    db = open_db(settings.store_path)
    try:
        result = train(training_examples(db, rules, shipped=shipped), rules)
        version = store_result(db, result, rules) if result.model is not None else None
        rescored = rescore(db, settings) if then_rescore and version is not None else None
    finally:
        db.close()
    return Training(result=result, version=version, why=why, rescored=rescored)


def retraining_due(settings: Settings) -> str:
    """Why the model should be trained again now, or "" when it need not be."""
    db = open_db(settings.store_path)
    try:
        row = current_model(db)
        since = row["trained_at"] if row else None
        decisions = decisions_since(db, since)
        finalised = db.execute(
            "SELECT count(*) FROM issues WHERE status = 'final' AND finalized_at > ?",
            [since or ""]).fetchone()[0]
    finally:
        db.close()
    if finalised:
        return "issue finalised"
    if decisions >= settings.triage.retrain_after:
        return f"{decisions} decisions since the last training"
    return ""


def retrain_if_due(settings: Settings) -> Training | None:
    """Train and rescore when `retraining_due` says so; None when it was not due."""
    why = retraining_due(settings)
    if not why:
        return None
    return train_model(settings, why=why, then_rescore=True)
