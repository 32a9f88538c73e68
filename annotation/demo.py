"""Demo data written by the project: prompts with a careful and a careless answer each, so a newcomer has
something real-looking to label, and simulated annotators whose labels give every quality figure something true to
show. Nothing here is copied from a third-party dataset: a few hand-written items, and a few hundred generated ones
(arithmetic, percentages, conversions, primes, counting, sorting, weekdays) whose right answer the code knows."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import AnnotatorPaused
from .feedback import to_screen
from .models import Assignment, Project
from .services.assignment import assignment_next
from .services.labels import Submission, label_submit

DEMO_SEED = 20261203

DEMO_GUIDELINES = """# How to judge

Pick the response that a careful expert would rather send to the person who asked.

1. **Correctness first.** A wrong fact or broken code loses, however well written.
2. **Then helpfulness:** does it answer *this* question, at the right length?
3. **Then clarity and tone.**

Choose **tie** only when you would honestly be equally happy with either, and **both bad** when neither
should be sent. Use the rationale for anything a lead should know.
"""

# (prompt, careful answer, careless answer)
_ITEMS: list[tuple[str, str, str]] = [
    (
        "How do I reverse a list in Python without modifying the original?",
        "Use slicing, which returns a new list:\n\n```python\nitems = [1, 2, 3]\nreversed_items = items[::-1]\n```\n\n"
        "`list(reversed(items))` works too. Avoid `items.reverse()` here: it reverses in place and returns `None`.",
        "Call `items.reverse()` and it gives you the reversed list.",
    ),
    (
        "What is the boiling point of water at the top of Mount Everest?",
        "About **70 °C** (roughly 160 °F). Air pressure at the summit is about a third of sea level, so water boils "
        "at a much lower temperature, which is why cooking takes longer at altitude.",
        "Water always boils at 100 °C, altitude doesn't matter.",
    ),
    (
        "Write a haiku about autumn rain.",
        "Cold rain on maples —\nred leaves let go one by one,\nthe gutter sings low.",
        "Autumn rain is wet\nit falls down from the sky\nI like autumn rain a lot",
    ),
    (
        "Explain what a database index is to a new developer.",
        "An index is a separate, sorted structure (usually a B-tree) that maps column values to the rows that hold "
        "them. Like a book's index, it lets the database jump to matching rows instead of reading the whole table. "
        "The cost: every insert or update must also update the index, and it takes disk space — so index the columns "
        "you filter, join or sort on, not all of them.",
        "An index makes the database faster. You should add indexes to all columns.",
    ),
    (
        "My SQL query `SELECT * FROM users WHERE name = '` + input + `'` is built by string concatenation. Is that OK?",
        "No — that is open to **SQL injection**: input such as `' OR '1'='1` changes the query. Use parameters:\n\n"
        '```python\ncursor.execute("SELECT * FROM users WHERE name = %s", [name])\n```\n\n'
        "The driver sends the value separately from the SQL, so it can never be read as code.",
        "It's fine as long as users are trusted. You can also escape quotes by hand.",
    ),
    (
        "Summarize the plot of Romeo and Juliet in two sentences.",
        "Two young lovers from feuding families in Verona marry in secret. A chain of misunderstandings ends with both "
        "taking their own lives, which finally reconciles their families.",
        "Romeo and Juliet is a play by Shakespeare. It is very famous and has been adapted many times. It is about "
        "love. There are many characters in it.",
    ),
    (
        "How many hours should an adult sleep per night?",
        "Most adults need **7–9 hours**. Needs vary a little between people; regularly getting under 7 is linked to "
        "worse concentration and health, so a consistent schedule matters as much as the total.",
        "4 hours is enough if you drink coffee.",
    ),
    (
        "Translate 'Where is the train station?' into Spanish.",
        "**¿Dónde está la estación de tren?**",
        "¿Dónde es la tren estación?",
    ),
    (
        "What's the difference between `git merge` and `git rebase`?",
        "Both integrate changes from one branch into another.\n\n- **merge** keeps history as it happened and adds a "
        "merge commit.\n- **rebase** replays your commits on top of the other branch, giving a linear history but "
        "rewriting commit ids.\n\nRule of thumb: rebase your own unpublished work; merge shared branches.",
        "They are the same thing, rebase is just the newer name.",
    ),
    (
        "Give me a quick recipe for a vinaigrette.",
        "Whisk **3 parts oil to 1 part vinegar** (e.g. 3 tbsp olive oil, 1 tbsp red wine vinegar), add 1 tsp Dijon "
        "mustard to emulsify, a pinch of salt and pepper. Taste and adjust; shake in a jar to re-mix.",
        "Mix oil and vinegar.",
    ),
    (
        "Is it safe to look at a solar eclipse with sunglasses?",
        "**No.** Ordinary sunglasses do not block enough light and can let the sun burn your retina without pain. Use "
        "certified eclipse glasses (ISO 12312-2) or a pinhole projector.",
        "Yes, dark sunglasses are fine for a few minutes.",
    ),
    (
        "Write a function that checks whether a string is a palindrome.",
        "```python\ndef is_palindrome(text: str) -> bool:\n    cleaned = [c.lower() for c in text if c.isalnum()]\n"
        "    return cleaned == cleaned[::-1]\n```\n\nIt ignores case, spaces and punctuation, so "
        '`is_palindrome("A man, a plan, a canal: Panama")` is `True`.',
        "```python\ndef is_palindrome(s):\n    return s == reversed(s)\n```",
    ),
]


def demo_pairs() -> list[dict]:
    """Records in Arbiter's `pairs` import format. The careful answer alternates between A and B so the file itself
    carries no position pattern."""
    records = []
    for i, (prompt, good, bad) in enumerate(_ITEMS):
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        records.append(
            {
                "id": f"demo-{i + 1:03d}",
                "prompt": prompt,
                "response_a": a,
                "response_b": b,
                "model_a": "demo-careful" if a is good else "demo-careless",
                "model_b": "demo-careful" if b is good else "demo-careless",
                "metadata": {"source": "arbiter-demo"},
            }
        )
    # Two multi-turn prompts, shown as a chat.
    records.append(
        {
            "id": "demo-chat-001",
            "prompt": [
                {"role": "user", "content": "I'm planning a 3-day trip to Lisbon."},
                {"role": "assistant", "content": "Nice! What would you like help with — sights, food, or transport?"},
                {"role": "user", "content": "Transport from the airport to the centre."},
            ],
            "response_a": "The **metro red line** runs from the airport to the centre in about 20 minutes; change at "
            "Alameda or São Sebastião for other lines. A taxi or ride-hail takes 15–30 minutes depending on traffic.",
            "response_b": "Take a taxi.",
            "model_a": "demo-careful",
            "model_b": "demo-careless",
        }
    )
    records.append(
        {
            "id": "demo-chat-002",
            "prompt": [
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "Convert 5 miles to kilometres."},
            ],
            "response_a": "5 miles = 8 km.",
            "response_b": "5 miles ≈ **8.05 km** (1 mile = 1.609 km).",
            "model_a": "demo-careless",
            "model_b": "demo-careful",
        }
    )
    for i, (prompt, good, bad) in enumerate(_generated_items()):
        first_is_good = random.Random(f"{DEMO_SEED}:{i}").random() < 0.5  # the careful answer's side, at random
        a, b = (good, bad) if first_is_good else (bad, good)
        records.append({"id": f"demo-gen-{i + 1:03d}", "prompt": prompt, "response_a": a, "response_b": b,
                        "model_a": "demo-careful" if first_is_good else "demo-careless",
                        "model_b": "demo-careless" if first_is_good else "demo-careful",
                        "metadata": {"source": "arbiter-demo"}})  # fmt: skip
    # Calibration pairs with the expected answer and why: the first two are each annotator's practice (with
    # feedback), the rest are mixed in unannounced.
    for i, (prompt, a, b, gold, why) in enumerate(_CALIBRATION + _generated_calibration()):
        records.append({"id": f"demo-gold-{i + 1:03d}", "prompt": prompt, "response_a": a, "response_b": b,
                        "gold": gold, "gold_explanation": why, "metadata": {"source": "arbiter-demo"}})  # fmt: skip
    return records


# (prompt, response A, response B, expected answer, explanation quoting the demo guidelines)
_CALIBRATION: list[tuple[str, str, str, str, str]] = [
    (
        "How many bytes are in a kibibyte?",
        "A kibibyte (KiB) is **1,024 bytes**; a kilobyte (kB) is 1,000 bytes.",
        "A kibibyte is 1,000 bytes.",
        "A",
        "Guideline 1, *correctness first*: B states a wrong fact, so A wins however short both are.",
    ),
    (
        "Give me a one-line shell command to count the lines in `notes.txt`.",
        "There are many ways to count lines in a file. You could open it in an editor and look at the line numbers, "
        "or write a small Python script that reads the file and counts newline characters, or use a shell tool.",
        "`wc -l < notes.txt`",
        "B",
        "Guideline 2, *helpfulness*: the question asks for one command; B gives it, A talks around it.",
    ),
    (
        "What is 12 × 12?",
        "144.",
        "12 × 12 = **144**.",
        "tie",
        "Both are correct and answer exactly what was asked: choose **tie** when you would honestly be equally happy "
        "sending either.",
    ),
]


_RAMBLE = ("Great question! There are a few things to keep in mind here, and it is worth going through them one by "
           "one before giving an answer, because the details matter. ")  # fmt: skip
_WORDS = (
    "harbour",
    "lantern",
    "orchard",
    "pebble",
    "quarrel",
    "saucepan",
    "thimble",
    "umbrella",
    "velvet",
    "walnut",
    "biscuit",
    "canyon",
    "dolphin",
    "eyebrow",
    "falcon",
    "gravel",
    "hammock",
    "island",
    "jigsaw",
    "kettle",
    "meadow",
    "nutmeg",
    "oatmeal",
    "parsnip",
    "riddle",
    "sparrow",
    "tornado",
    "uniform",
    "volcano",
    "whisper",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CONVERSIONS = (  # (from, to, factor or "c_to_f", wrong factor)
    ("kilometres", "miles", 0.621371, 1.609), ("miles", "kilometres", 1.609344, 0.621),
    ("kilograms", "pounds", 2.204623, 0.4536), ("litres", "US gallons", 0.264172, 3.785),
    ("degrees Celsius", "degrees Fahrenheit", "c_to_f", "c_plus_32"),
)  # fmt: skip


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def _generated_items() -> list[tuple[str, str, str]]:
    """(prompt, careful answer, careless answer), a few hundred of them, the same every time. A quarter of the
    careless answers ramble first, so the longer answer is not always the better one."""
    rng = random.Random(DEMO_SEED)
    items: list[tuple[str, str, str]] = []
    for _ in range(60):
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        tens, ones = b // 10 * 10, b % 10
        items.append((f"What is {a} × {b}?",
                      f"{a} × {b} = **{a * b}** ({a} × {tens} = {a * tens}, plus {a} × {ones} = {a * ones}).",
                      f"{a} × {b} is {a * b + rng.choice([-10, -1, 1, 10, 100])}."))  # fmt: skip
    for _ in range(40):
        pct, n = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75]), rng.randrange(40, 2000, 20)
        value = n * pct / 100
        items.append((f"What is {pct}% of {n}?", f"{pct}% of {n} is **{value:g}** ({n} × {pct} / 100).",
                      f"About {n / pct:.1f}."))  # fmt: skip
    for _ in range(40):
        source, target, factor, wrong = rng.choice(_CONVERSIONS)
        x = rng.randrange(2, 200)
        if factor == "c_to_f":
            right, bad, how = x * 9 / 5 + 32, x + 32, "multiply by 9/5, then add 32"
        else:
            right, bad, how = x * factor, x * wrong, f"1 {source[:-1]} = {factor:g} {target}"
        items.append((f"Convert {x} {source} to {target}.", f"{x} {source} ≈ **{right:.2f} {target}** ({how}).",
                      f"{x} {source} is {bad:.0f} {target}."))  # fmt: skip
    for _ in range(40):
        n = rng.randrange(51, 400, 2)
        if _is_prime(n):
            good = f"**Yes.** {n} has no divisor between 2 and {int(n**0.5)} (its square root), so it is prime."
            bad = f"No, {n} is not prime: large odd numbers usually have divisors."
        else:
            d = next(d for d in range(3, n) if n % d == 0)
            good = f"**No.** {n} = {d} × {n // d}."
            bad = f"Yes, {n} is prime because it is odd."
        items.append((f"Is {n} a prime number?", good, bad))
    for word in _WORDS + tuple(w[::-1] for w in _WORDS[:10]):
        vowels = [c for c in word if c in "aeiou"]
        items.append((f"How many vowels are in the word '{word}'?",
                      f"**{len(vowels)}**: {', '.join(vowels) or 'none'}.",
                      f"{len(vowels) + rng.choice([-1, 1, 2])} vowels."))  # fmt: skip
    for _ in range(40):
        numbers = rng.sample(range(1, 100), 6)
        ordered = sorted(numbers)
        slip = ordered.copy()
        i = rng.randrange(5)
        slip[i], slip[i + 1] = slip[i + 1], slip[i]
        items.append((f"Sort these numbers from smallest to largest: {', '.join(map(str, numbers))}.",
                      ", ".join(map(str, ordered)), ", ".join(map(str, slip))))  # fmt: skip
    for _ in range(30):
        start, n = rng.randrange(7), rng.randrange(3, 60)
        right, wrong = _DAYS[(start + n) % 7], _DAYS[(start + n + 1) % 7]
        items.append((f"What day of the week is it {n} days after a {_DAYS[start]}?",
                      f"**{right}**: {n} days is {n // 7} weeks and {n % 7} days, and {n % 7} days after a "
                      f"{_DAYS[start]} is a {right}.", f"It's a {wrong}."))  # fmt: skip
    seen: set[str] = set()
    unique = [item for item in items if not (item[0] in seen or seen.add(item[0]))]  # a drawn question once
    return [(prompt, good, _RAMBLE + bad if rng.random() < 0.25 else bad) for prompt, good, bad in unique]


def _generated_calibration() -> list[tuple[str, str, str, str, str]]:
    """Additions with one right and one wrong sum: calibration pairs whose expected answer is certain."""
    rng = random.Random(DEMO_SEED + 1)
    out = []
    for _ in range(12):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        right, wrong = f"{a} + {b} = {a + b}.", f"{a} + {b} = {a + b + rng.choice([-100, -10, 10, 100])}."
        gold = rng.choice("AB")
        first, second = (right, wrong) if gold == "A" else (wrong, right)
        out.append((f"What is {a} + {b}?", first, second, gold,
                    f"Guideline 1, *correctness first*: {a} + {b} = {a + b}."))  # fmt: skip
    return out


# --- simulated annotators ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulated:
    """An annotator the demo plays: how often they pick the careful answer, whether they always press left, how long
    they take, and how many calibration answers they get right before they drift."""

    username: str
    labels: int
    accuracy: float = 0.9
    always_left: bool = False
    seconds: tuple[float, float] = (4.0, 14.0)
    calibration_accuracy: float = 1.0  # on calibration pairs, where the answer is certain
    calibration_right: int | None = None  # then every calibration answer is wrong (until they are paused)


SIMULATED = (
    Simulated("demo-sim-careful", labels=120),
    Simulated("demo-sim-steady", labels=100, accuracy=0.85, seconds=(3.0, 10.0), calibration_accuracy=0.95),
    Simulated("demo-sim-leftclicker", labels=80, always_left=True, seconds=(2.0, 5.0)),
    Simulated("demo-sim-speedy", labels=80, accuracy=0.6, seconds=(0.25, 0.7), calibration_accuracy=0.9),
    Simulated("demo-sim-drifting", labels=300, accuracy=0.85, calibration_right=2),  # a cap: the pause stops them
)


def _careful_side(assignment: Assignment) -> str:
    pair = assignment.pair
    if pair.gold:
        return pair.gold
    return "A" if pair.model_a == "demo-careful" else "B"


def simulated_labels(project: Project, annotator, who: Simulated) -> int:
    """Label ``who.labels`` items as ``who`` would, through the same services as the annotation page (so K, calibration,
    practice, repeats and the automatic pause all apply). Stops early when nothing is left or they are paused.
    Returns the number of labels given."""
    rng = random.Random(f"{DEMO_SEED}:{who.username}")
    given = calibration_seen = 0
    while given < who.labels:
        try:
            assignment = assignment_next(project=project, annotator=annotator)
        except AnnotatorPaused:
            break
        if assignment is None:
            break
        right = _careful_side(assignment)
        if assignment.kind == Assignment.Kind.GOLD:
            calibration_seen += 1
            drifted = who.calibration_right is not None and calibration_seen > who.calibration_right
            correct = not drifted and rng.random() < who.calibration_accuracy
        else:
            correct = rng.random() < who.accuracy
        if right == "tie":
            answer = "tie" if correct else "A"
        else:
            answer = right if correct else ("B" if right == "A" else "A")
        screen = "left" if who.always_left else to_screen(answer, assignment.left_is_a)
        strength = rng.randint(1, len(project.strength_scale)) if project.strength_scale and screen != "tie" else None
        time_ms = int(rng.uniform(*who.seconds) * 1000)
        label_submit(assignment=assignment, submission=Submission(choice=screen, strength=strength,
                                                                  time_on_item_ms=time_ms))  # fmt: skip
        given += 1
    return given
