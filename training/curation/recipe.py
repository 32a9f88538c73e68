"""A curation recipe's settings (saved as CurationRecipe.config, one version per change): what training.curation.steps
keeps and drops."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SOURCES = ("human", "judge", "human_else_judge", "agree", "scores", "human_else_scores", "composite",
           "human_else_composite")  # fmt: skip
# Sources that read the human majority (and so may take it from one criterion instead of the overall choice).
HUMAN_SOURCES = ("human", "human_else_judge", "agree", "human_else_scores", "human_else_composite")
COMPOSITE_SOURCES = ("composite", "human_else_composite")


@dataclass(frozen=True)
class RecipeConfig:
    source: str = "human"
    include_gold: bool = False
    min_human_agreement: float = 0.0
    min_vote_margin: float = 0.0
    min_judge_margin: float = 0.0
    drop_judge_inconsistent: bool = True
    both_bad_as_undesirable: bool = False
    response_similarity: float = 0.98
    prompt_similarity: float = 0.95
    max_pairs_per_prompt: int | None = None
    balance_length: bool = False
    seed: int = 0
    near_duplicates: bool = True
    # One of the project's criteria (Project.criteria): the human majority of that criterion's choices
    # (Label.criteria) replaces the overall choice, for per-axis preference data. Empty: the overall choice.
    criterion: str = ""
    # The name of one of the project's composites (judging.models.Composite): its stored scores are the preference
    # of the composite sources.
    composite: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> RecipeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown recipe settings: {', '.join(unknown)}")
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}")
        for name in ("min_human_agreement", "min_vote_margin", "response_similarity", "prompt_similarity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0.0 <= self.min_judge_margin <= 9.0:
            raise ValueError("min_judge_margin must be between 0 and 9 (scores are 1-10)")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise ValueError("max_pairs_per_prompt must be at least 1")
        if not isinstance(self.criterion, str):
            raise ValueError("criterion must be the name of one of the project's criteria")
        if self.criterion and self.source not in HUMAN_SOURCES:
            raise ValueError(f"criterion needs a source with human labels ({', '.join(HUMAN_SOURCES)})")
        if not isinstance(self.composite, str):
            raise ValueError("composite must be the name of one of the project's composites")
        if (self.source in COMPOSITE_SOURCES) != bool(self.composite):
            raise ValueError(f"a composite goes with the sources {', '.join(COMPOSITE_SOURCES)}, and they need one")

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("criterion", "composite"):  # recipes saved before these existed keep their exact config
            if not data[name]:
                del data[name]
        return data
