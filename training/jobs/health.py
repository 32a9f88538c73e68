"""Health alarms of a training run, checked at every logged step (training.runner feeds the monitor).

Plain Python (no torch, no Django): the runner evaluates the alarms, the web process shows their titles and advice.
The signals are those seed 003 (§18.4.4) names for DPO: the implicit reward margin should grow then plateau
(flat: β too high or learning rate too low; accuracies at 1.0 early while it still races up: overfitting); chosen
log-probs falling below the reference's while the margin rises is likelihood displacement (TRL #800); the policy
should stay within a few nats of its reference; the loss must stay finite; answers that grow fast are length
exploitation.

TRL logs no KL for DPO, so the monitor estimates the drift from what it does log: rewards/chosen and
rewards/rejected are β·(log π − log π_ref) summed over each response, so their mean magnitude over β is the policy's
log-ratio to the reference on the training responses, in nats per response (``kl_estimate``). KTO logs its own
``kl``. ORPO and SimPO have no reference, so the KL alarm does not apply to them. A reward model (method "reward")
logs accuracy, margin and rewards of its own scores, none of the keys the trend alarms read: only the non-finite
loss alarm applies to it. The sampled KL on held-out prompts after training (training.runner.evaluation) is the
exact estimator; this one is cheap enough for every step.

Every alarm fires at most once per run and records step, value, threshold, advice and its policy: warn, or stop
(the runner then ends training at this step, saves the adapter and marks the job stopped early with the reason).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from statistics import linear_regression

POLICIES = ("off", "warn", "stop")

# name -> (title, advice); the spec field on_<name> holds its policy.
ALARMS = {
    "nan": (
        "Loss is not finite",
        "The loss or gradient became NaN/inf: lower the learning rate, prefer bf16 to fp16, and relaunch; training "
        "on past this step learns nothing.",
    ),
    "kl": (
        "Drifted far from the reference",
        "The policy's log-ratio to its reference passed the threshold: raise β, lower the learning rate, or keep "
        "an earlier checkpoint; far from the reference, DPO's implicit reward stops being trustworthy.",
    ),
    "margin_flat": (
        "Reward margin flat after warmup",
        "The implicit reward margin barely moves: β is too high or the learning rate too low for this data.",
    ),
    "saturation": (
        "Accuracy saturated early while the margin keeps racing",
        "Reward accuracy is 1.0 early and the margin still grows fast: overfitting. Lower the learning rate, raise "
        "β, train fewer steps, or try the ipo or robust loss.",
    ),
    "displacement": (
        "Chosen log-probs falling while the margin rises",
        "Likelihood displacement: the chosen answers lose probability too. Add the SFT term (rpo_alpha 0.2–1.0) "
        "or lower the learning rate.",
    ),
    "length": (
        "Answers growing fast",
        "Held-out answers got much longer than the base model's: length exploitation. Try ld_alpha (LD-DPO), "
        "length-balanced curation, or a higher β.",
    ),
}
DEFAULT_POLICY = {"nan": "stop", "kl": "warn", "margin_flat": "warn", "saturation": "warn", "displacement": "warn",
                  "length": "warn"}  # fmt: skip


@dataclass
class Alarm:
    alarm: str
    title: str
    step: int
    value: float | str
    threshold: str
    advice: str
    policy: str  # warn | stop

    def as_dict(self) -> dict:
        return asdict(self)


def _slope(points: list[tuple[int, float]]) -> float:
    xs, ys = [float(s) for s, _ in points], [v for _, v in points]
    if len(set(xs)) < 2:
        return 0.0
    return linear_regression(xs, ys).slope


class HealthMonitor:
    """Feed it every logged step (``observe``) and every held-out length check (``observe_lengths``); each returns
    the alarms that fire there. ``spec`` is a training.jobs.spec.JobSpec."""

    def __init__(self, spec, *, max_steps: int):
        self.spec = spec
        self.max_steps = max(max_steps, 1)
        self.warmup_end = math.ceil(spec.warmup_ratio * self.max_steps)
        self.window = spec.alarm_window
        self.policy = {name: getattr(spec, f"on_{name}") for name in ALARMS}
        # Only the last window is ever read: bounded, so a step costs the same at step 10 and at step 100,000.
        self.history: deque[tuple[int, dict]] = deque(maxlen=self.window)
        self.margins_after_warmup = 0  # logged margins after warmup so far (the flat-margin check is at the window's)
        self.fired: list[Alarm] = []
        self.base_length: float | None = None

    def _fire(self, name: str, step: int, value, threshold: str) -> list[Alarm]:
        policy = self.policy[name]
        if policy == "off" or any(a.alarm == name for a in self.fired):
            return []
        title, advice = ALARMS[name]
        if isinstance(value, float):
            value = round(value, 6)
        alarm = Alarm(name, title, step, value, threshold, advice, policy)
        self.fired.append(alarm)
        return [alarm]

    def kl_estimate(self, values: dict) -> float | None:
        """Nats per response between policy and reference (module docstring); None where there is no reference."""
        if not self.spec.needs_reference:
            return None
        if "kl" in values:  # KTO's own estimate
            return values["kl"]
        chosen, rejected = values.get("rewards/chosen"), values.get("rewards/rejected")
        if chosen is None or rejected is None:
            return None
        return (abs(chosen) + abs(rejected)) / (2 * self.spec.resolved_beta())

    def observe(self, step: int, logs: dict) -> tuple[dict, list[Alarm]]:
        """The step's finite values (with ``kl_estimate`` added) and the alarms that fire."""
        fired: list[Alarm] = []
        for key in ("loss", "grad_norm"):
            value = logs.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                fired += self._fire("nan", step, str(value), f"{key} finite")
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        kl = self.kl_estimate(values)
        if kl is not None:
            values["kl_estimate"] = kl
            if kl > self.spec.kl_max:
                fired += self._fire("kl", step, kl, f"> {self.spec.kl_max:g} nats")
        self.history.append((step, values))
        if step > self.warmup_end and "rewards/margins" in values:
            self.margins_after_warmup += 1
        fired += self._trends(step)
        return values, fired

    def _series(self, key: str, *, after_warmup: bool) -> list[tuple[int, float]]:
        return [(s, v[key]) for s, v in self.history if key in v and (not after_warmup or s > self.warmup_end)]

    def _trends(self, step: int) -> list[Alarm]:
        fired: list[Alarm] = []
        w, spec = self.window, self.spec
        margins = self._series("rewards/margins", after_warmup=True)
        if self.margins_after_warmup == w and len(margins) == w:  # the first full window after warmup
            span = max(v for _, v in margins) - min(v for _, v in margins)
            if span < spec.margin_flat_below:
                fired += self._fire("margin_flat", step, span, f"moved < {spec.margin_flat_below:g} over {w} steps")
        recent = self._series("rewards/margins", after_warmup=False)
        accuracies = self._series("rewards/accuracies", after_warmup=False)
        if len(recent) == w and len(accuracies) == w and step <= self.max_steps / 2:
            first, last = recent[0][1], recent[-1][1]
            growth = (last - first) / max(abs(first), 1e-3)
            if min(v for _, v in accuracies) >= 0.999 and last > first and growth > spec.saturation_growth:
                fired += self._fire("saturation", step, growth,
                                    f"accuracy 1.0 and margin growth > {spec.saturation_growth:g}× over {w} steps, "
                                    "in the first half")  # fmt: skip
        # The chosen answers' log-ratio to the reference (rewards/chosen over β), not their summed log-probs
        # (logps/chosen): those swing by nats from one batch to the next with the answers' lengths alone.
        beta = spec.resolved_beta()
        chosen = [(s, v / beta) for s, v in self._series("rewards/chosen", after_warmup=True)]
        if len(chosen) == w and len(margins) == w:
            lost = -chosen[-1][1]
            if _slope(chosen) < 0 and lost > spec.displacement_drop and _slope(margins) > 0:
                fired += self._fire("displacement", step, lost,
                                    f"chosen log-probs > {spec.displacement_drop:g} nats below the reference's and "
                                    f"falling over {w} steps while the margin rose")  # fmt: skip
        return fired

    def observe_lengths(self, step: int, mean_tokens: float) -> list[Alarm]:
        """The mean length (tokens) of greedy answers to a few held-out prompts; the first call is the base."""
        if self.base_length is None:
            self.base_length = mean_tokens
            return []
        ratio = mean_tokens / max(self.base_length, 1.0)
        if ratio > self.spec.length_growth:
            return self._fire("length", step, ratio, f"> {self.spec.length_growth:g}× the base model's length")
        return []

    @property
    def stop(self) -> Alarm | None:
        """The first alarm whose policy is stop, if one fired."""
        return next((a for a in self.fired if a.policy == "stop"), None)


def length_check_steps(checks: int, max_steps: int) -> set[int]:
    """The steps at which held-out answers are generated (the base is measured before step 1)."""
    if checks <= 0 or max_steps <= 0:
        return set()
    return {max(1, round(max_steps * (i + 1) / checks)) for i in range(checks)}
